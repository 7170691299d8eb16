//! Partner Center: customers (paged with `MS-ContinuationToken`), subscriptions, and quantity
//! changes by PATCH, made idempotent by `MS-RequestId` as the real service does. New-commerce
//! rules (api-facts §5): a decrease only within 168 hours of the purchase or the last renewal
//! (`effectiveStartDate`, renewing at `commitmentEndDate` every `termDuration`); outside it,
//! `scheduledNextTermInstructions` schedules the quantity for the renewal (new-commerce offers
//! with auto-renew only), and a later mid-term quantity change deletes it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::auth::PcAuth;
use crate::http::{base_url, reply, Reply};
use crate::model::{PcSubscription, PendingSeat};
use crate::shared::{now_ms, Shared};
use crate::term::{months, Term, DEFAULT_START};
use chrono::Utc;

/// Partner Center routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/api.partnercenter.microsoft.com/v1/customers",
            get(customers),
        )
        .route(
            "/api.partnercenter.microsoft.com/v1/customers/{cid}/subscriptions",
            get(subscriptions),
        )
        .route(
            "/api.partnercenter.microsoft.com/v1/customers/{cid}/subscriptions/{sid}",
            get(subscription).patch(update),
        )
}

fn pc_error(status: StatusCode, code: u32, description: &str) -> Response {
    reply(
        status,
        json!({"code": code, "description": description, "data": [], "source": "PartnerFD"}),
    )
}

fn term_of(s: &PcSubscription) -> Term {
    Term::at(
        s.effective_start.as_deref(),
        months(s.term_duration.as_deref().unwrap_or("P1M")),
        Utc::now(),
    )
}

fn sub_json(s: &PcSubscription) -> Value {
    let t = term_of(s);
    let stamp = |d: chrono::DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let product_type = if s.legacy {
        "OnlineServices"
    } else {
        "OnlineServicesNCE"
    };
    json!({"id": s.id, "offerId": s.offer_id, "offerName": s.offer_name, "friendlyName": s.offer_name, "quantity": s.quantity,
           "unitType": "Licenses", "status": s.status, "billingCycle": s.billing_cycle,
           "termDuration": s.term_duration.as_deref().unwrap_or("P1M"), "autoRenewEnabled": s.auto_renew.unwrap_or(true),
           "creationDate": s.effective_start.as_deref().unwrap_or(DEFAULT_START), "effectiveStartDate": stamp(t.start),
           "commitmentEndDate": stamp(t.renewal), "productType": {"id": product_type, "displayName": product_type},
           "scheduledNextTermInstructions": s.scheduled.clone().unwrap_or(Value::Null),
           "attributes": {"objectType": "Subscription"}})
}

async fn customers(
    State(s): State<Arc<Shared>>,
    _: PcAuth,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let size: usize = q
        .get("size")
        .and_then(|x| x.parse().ok())
        .unwrap_or(500)
        .clamp(1, 500);
    let start: usize = headers
        .get("ms-continuationtoken")
        .and_then(|h| h.to_str().ok())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let all: Vec<Value> = s.read(|w| w.partner_center.customers.iter().map(|c| json!({"id": c.id, "companyProfile": {"tenantId": c.id, "domain": c.domain, "companyName": c.company_name}, "relationshipToPartner": "reseller", "attributes": {"objectType": "Customer"}})).collect());
    let total = all.len();
    let items: Vec<Value> = all.into_iter().skip(start).take(size).collect();
    let mut body = json!({"totalCount": total, "items": items, "links": {"self": {"uri": format!("/customers?size={size}"), "method": "GET", "headers": []}}, "attributes": {"objectType": "Collection"}});
    if start + size < total {
        body["links"]["next"] = json!({"uri": format!("{}/api.partnercenter.microsoft.com/v1/customers?size={size}", base_url(&headers)), "method": "GET", "headers": [{"key": "MS-ContinuationToken", "value": (start + size).to_string()}]});
    }
    Ok(reply(StatusCode::OK, body))
}

async fn subscriptions(State(s): State<Arc<Shared>>, _: PcAuth, Path(cid): Path<String>) -> Reply {
    s.read(|w| {
        if !w.partner_center.customers.iter().any(|c| c.id == cid) {
            return Err(pc_error(StatusCode::NOT_FOUND, 600008, "The requested customer was not found."));
        }
        let items: Vec<Value> = w.partner_center.subscriptions.iter().filter(|x| x.customer_id == cid).map(sub_json).collect();
        Ok(reply(StatusCode::OK, json!({"totalCount": items.len(), "items": items, "attributes": {"objectType": "Collection"}})))
    })
}

async fn subscription(
    State(s): State<Arc<Shared>>,
    _: PcAuth,
    Path((cid, sid)): Path<(String, String)>,
) -> Reply {
    s.read(|w| {
        let x = w
            .partner_center
            .subscriptions
            .iter()
            .find(|x| x.customer_id == cid && x.id == sid)
            .ok_or_else(|| pc_error(StatusCode::NOT_FOUND, 800002, "Subscription not found."))?;
        Ok(reply(StatusCode::OK, sub_json(x)))
    })
}

async fn update(
    State(s): State<Arc<Shared>>,
    _: PcAuth,
    headers: HeaderMap,
    Path((cid, sid)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Reply {
    let request_id = headers
        .get("ms-requestid")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    if let Some(rid) = &request_id {
        if let Some(previous) = s
            .request_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(rid)
        {
            return Ok(reply(StatusCode::OK, previous.clone()));
        }
    }
    let Some(quantity) = body["quantity"].as_u64() else {
        return Err(pc_error(
            StatusCode::BAD_REQUEST,
            400,
            "The subscription resource must include quantity.",
        ));
    };
    let result = s.write(|w| {
        let i = w
            .partner_center
            .subscriptions
            .iter()
            .position(|x| x.customer_id == cid && x.id == sid)
            .ok_or_else(|| pc_error(StatusCode::NOT_FOUND, 800002, "Subscription not found."))?;
        if quantity == 0 {
            return Err(pc_error(
                StatusCode::BAD_REQUEST,
                800050,
                "Quantity must be at least 1; use status deleted to cancel.",
            ));
        }
        let old = w.partner_center.subscriptions[i].quantity;
        let sub = &w.partner_center.subscriptions[i];
        let next = &body["scheduledNextTermInstructions"];
        if next.is_object() && sub.scheduled.as_ref() != Some(next) {
            if sub.legacy {
                return Err(pc_error(StatusCode::BAD_REQUEST, 800061, "Scheduled changes are only available for new commerce subscriptions."));
            }
            if !sub.auto_renew.unwrap_or(true) {
                return Err(pc_error(StatusCode::BAD_REQUEST, 800062, "Auto-renew must be enabled to schedule changes for the next term."));
            }
            if next["quantity"].as_u64().is_none_or(|q| q == 0) {
                return Err(pc_error(StatusCode::BAD_REQUEST, 800063, "scheduledNextTermInstructions must include a quantity of at least 1."));
            }
            w.partner_center.subscriptions[i].scheduled = Some(next.clone());
            w.changed(format!("partner_center/subscription/{sid}/scheduled"));
        }
        if (quantity as u32) < old && !term_of(&w.partner_center.subscriptions[i]).in_window(Utc::now()) {
            return Err(pc_error(
                StatusCode::BAD_REQUEST,
                800060,
                "Subscription quantity can only be decreased within 168 hours (7 days) of purchase or renewal. Schedule the change for the next term instead.",
            ));
        }
        if let Some(status) = body["status"].as_str() {
            w.partner_center.subscriptions[i].status = status.into();
        }
        if quantity as u32 != old {
            // A mid-term change deletes the scheduled changes (they must be applied again).
            if w.partner_center.subscriptions[i].scheduled.take().is_some() {
                w.changed(format!("partner_center/subscription/{sid}/scheduled"));
            }
            w.partner_center.subscriptions[i].quantity = quantity as u32;
            let tenant = w
                .partner_center
                .customers
                .iter()
                .find(|c| c.id == cid)
                .map(|c| c.tenant.clone())
                .unwrap_or_default();
            let sku = w.partner_center.subscriptions[i].sku.clone();
            let at_ms = now_ms() + w.settings.purchase_delay_ms;
            w.pending_seats.push(PendingSeat {
                tenant,
                sku,
                delta: quantity as i64 - i64::from(old),
                at_ms,
            });
            w.changed(format!("partner_center/subscription/{sid}"));
        }
        Ok(sub_json(&w.partner_center.subscriptions[i]))
    })?;
    if let Some(rid) = request_id {
        s.request_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rid, result.clone());
    }
    Ok(reply(StatusCode::OK, result))
}
