//! Pax8's partner API: companies, products, subscriptions (quantity changes buy or release
//! seats, visible in `subscribedSkus` after the purchase delay), orders and cancellations.
//! A committed subscription (its product requires a commitment) shows its term as
//! `commitment: {term, endDate}`; lowering its quantity is refused (422) outside the first
//! 7 days of the term unless the `PUT` also gives `startDate` = the renewal date, which
//! schedules the decrease (shown as `scheduledChange`). The scheduling form is the sandbox's
//! reading of an undocumented Pax8 behaviour (see docs/sandbox.md).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::auth::Pax8Auth;
use crate::http::{empty, reply, Reply};
use crate::model::{Pax8Subscription, PendingSeat, World};
use crate::shared::{now_ms, Shared};
use crate::term::{months, Term, DEFAULT_START};
use chrono::Utc;

/// Pax8 routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api.pax8.com/v1/companies", get(companies))
        .route("/api.pax8.com/v1/companies/{id}", get(company))
        .route("/api.pax8.com/v1/products", get(products))
        .route("/api.pax8.com/v1/subscriptions", get(subscriptions))
        .route(
            "/api.pax8.com/v1/subscriptions/{id}",
            get(subscription).put(update).delete(cancel),
        )
        .route("/api.pax8.com/v1/orders", post(order))
}

fn problem(status: StatusCode, message: &str, instance: &str) -> Response {
    reply(
        status,
        json!({"type": status.canonical_reason(), "message": message, "instance": instance, "status": status.as_u16(), "details": [{"message": message}]}),
    )
}

fn page(items: Vec<Value>, q: &HashMap<String, String>) -> Value {
    let size: usize = q
        .get("size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .clamp(1, 200);
    let number: usize = q.get("page").and_then(|s| s.parse().ok()).unwrap_or(0);
    let total = items.len();
    let content: Vec<Value> = items.into_iter().skip(number * size).take(size).collect();
    json!({"content": content, "page": {"size": size, "totalElements": total, "totalPages": total.div_ceil(size), "number": number}})
}

/// The commitment term of a subscription: its own, else the billing term when the product
/// requires a commitment, else none.
fn commitment(w: &World, s: &Pax8Subscription) -> Option<String> {
    s.commitment_term.clone().or_else(|| {
        w.pax8
            .products
            .iter()
            .find(|p| p.id == s.product_id)
            .filter(|p| p.requires_commitment)
            .map(|_| s.billing_term.clone())
    })
}

/// The current term of a committed subscription.
fn term(w: &World, s: &Pax8Subscription) -> Option<Term> {
    commitment(w, s).map(|c| Term::at(s.start_date.as_deref(), months(&c), Utc::now()))
}

fn sub_json(w: &World, s: &Pax8Subscription) -> Value {
    let start = s.start_date.as_deref().unwrap_or(DEFAULT_START);
    let date = |d: chrono::DateTime<Utc>| d.format("%Y-%m-%d").to_string();
    let (commitment, scheduled) = match (commitment(w, s), term(w, s)) {
        (Some(c), Some(t)) => (
            json!({"term": c, "endDate": date(t.renewal)}),
            s.scheduled_quantity
                .map(|q| json!({"quantity": q, "effectiveDate": date(t.renewal)}))
                .unwrap_or(Value::Null),
        ),
        _ => (Value::Null, Value::Null),
    };
    json!({"id": s.id, "companyId": s.company_id, "productId": s.product_id, "quantity": s.quantity, "status": s.status,
           "billingTerm": s.billing_term, "startDate": start.get(..10).unwrap_or(start), "createdDate": start, "price": 0,
           "commitment": commitment, "scheduledChange": scheduled})
}

async fn companies(
    State(s): State<Arc<Shared>>,
    _: Pax8Auth,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let items = s.read(|w| {
        w.pax8
            .companies
            .iter()
            .map(
                |c| json!({"id": c.id, "name": c.name, "status": c.status, "externalId": c.tenant}),
            )
            .collect()
    });
    Ok(reply(StatusCode::OK, page(items, &q)))
}

async fn company(State(s): State<Arc<Shared>>, _: Pax8Auth, Path(id): Path<String>) -> Reply {
    s.read(|w| {
        let c = w
            .pax8
            .companies
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| problem(StatusCode::NOT_FOUND, "Company not found", &id))?;
        Ok(reply(
            StatusCode::OK,
            json!({"id": c.id, "name": c.name, "status": c.status, "externalId": c.tenant}),
        ))
    })
}

async fn products(
    State(s): State<Arc<Shared>>,
    _: Pax8Auth,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let items = s.read(|w| w.pax8.products.iter()
        .filter(|p| q.get("search").is_none_or(|x| p.name.to_lowercase().contains(&x.to_lowercase()) || p.sku.eq_ignore_ascii_case(x)))
        .map(|p| json!({"id": p.id, "name": p.name, "vendorName": p.vendor_name, "sku": p.sku, "vendorSku": p.sku, "requiresCommitment": p.requires_commitment})).collect());
    Ok(reply(StatusCode::OK, page(items, &q)))
}

async fn subscriptions(
    State(s): State<Arc<Shared>>,
    _: Pax8Auth,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let items = s.read(|w| {
        w.pax8
            .subscriptions
            .iter()
            .filter(|x| q.get("companyId").is_none_or(|c| &x.company_id == c))
            .filter(|x| q.get("productId").is_none_or(|p| &x.product_id == p))
            .filter(|x| q.get("status").is_none_or(|st| &x.status == st))
            .map(|x| sub_json(w, x))
            .collect()
    });
    Ok(reply(StatusCode::OK, page(items, &q)))
}

async fn subscription(State(s): State<Arc<Shared>>, _: Pax8Auth, Path(id): Path<String>) -> Reply {
    s.read(|w| {
        let x = w
            .pax8
            .subscriptions
            .iter()
            .find(|x| x.id == id)
            .ok_or_else(|| problem(StatusCode::NOT_FOUND, "Subscription not found", &id))?;
        Ok(reply(StatusCode::OK, sub_json(w, x)))
    })
}

/// Schedules the seat change a Pax8 quantity change causes in the company's tenant.
fn schedule_seats(w: &mut World, company_id: &str, product_id: &str, delta: i64) {
    let tenant = w
        .pax8
        .companies
        .iter()
        .find(|c| c.id == company_id)
        .map(|c| c.tenant.clone());
    let sku = w
        .pax8
        .products
        .iter()
        .find(|p| p.id == product_id)
        .map(|p| p.sku.clone());
    if let (Some(tenant), Some(sku)) = (tenant, sku) {
        let at_ms = now_ms() + w.settings.purchase_delay_ms;
        w.pending_seats.push(PendingSeat {
            tenant,
            sku,
            delta,
            at_ms,
        });
    }
}

async fn update(
    State(s): State<Arc<Shared>>,
    _: Pax8Auth,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Reply {
    let quantity = body.get("quantity").map(|q| q.as_u64());
    if body.get("quantity").is_none()
        && body.get("price").is_none()
        && body.get("billingTerm").is_none()
        && body.get("startDate").is_none()
    {
        return Err(problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "At least one of quantity, price, billingTerm or startDate is required",
            &id,
        ));
    }
    s.write(|w| {
        let i = w
            .pax8
            .subscriptions
            .iter()
            .position(|x| x.id == id)
            .ok_or_else(|| problem(StatusCode::NOT_FOUND, "Subscription not found", &id))?;
        if w.pax8.subscriptions[i].status != "Active" {
            return Err(problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Only active subscriptions can be changed",
                &id,
            ));
        }
        if let Some(q) = quantity {
            let q = q.ok_or_else(|| {
                problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "quantity must be a positive integer",
                    &id,
                )
            })? as u32;
            if q == 0 {
                return Err(problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "quantity must be at least 1; cancel the subscription instead",
                    &id,
                ));
            }
            let old = w.pax8.subscriptions[i].quantity;
            if q < old {
                if let Some(t) = term(w, &w.pax8.subscriptions[i]) {
                    if !t.in_window(Utc::now()) {
                        let renewal = t.renewal.format("%Y-%m-%d").to_string();
                        if body["startDate"].as_str().and_then(|d| d.get(..10)) == Some(renewal.as_str()) {
                            // A decrease scheduled for the renewal.
                            if w.pax8.subscriptions[i].scheduled_quantity != Some(q) {
                                w.pax8.subscriptions[i].scheduled_quantity = Some(q);
                                w.changed(format!("pax8/subscription/{id}/scheduled"));
                            }
                            return Ok(reply(StatusCode::OK, sub_json(w, &w.pax8.subscriptions[i])));
                        }
                        return Err(problem(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            &format!(
                                "Quantity can only be decreased within 7 days of the start of the commitment term ({}); schedule the decrease for the renewal on {renewal} (startDate)",
                                t.start.format("%Y-%m-%d")
                            ),
                            &id,
                        ));
                    }
                }
            }
            if q != old {
                w.pax8.subscriptions[i].quantity = q;
                let (company, product) = (
                    w.pax8.subscriptions[i].company_id.clone(),
                    w.pax8.subscriptions[i].product_id.clone(),
                );
                schedule_seats(w, &company, &product, i64::from(q) - i64::from(old));
                w.changed(format!("pax8/subscription/{id}"));
            }
        }
        Ok(reply(StatusCode::OK, sub_json(w, &w.pax8.subscriptions[i])))
    })
}

async fn cancel(State(s): State<Arc<Shared>>, _: Pax8Auth, Path(id): Path<String>) -> Reply {
    s.write(|w| {
        let i = w
            .pax8
            .subscriptions
            .iter()
            .position(|x| x.id == id)
            .ok_or_else(|| problem(StatusCode::NOT_FOUND, "Subscription not found", &id))?;
        if w.pax8.subscriptions[i].status == "Cancelled" {
            return Err(problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Subscription is already cancelled",
                &id,
            ));
        }
        w.pax8.subscriptions[i].status = "Cancelled".into();
        let (company, product, q) = (
            w.pax8.subscriptions[i].company_id.clone(),
            w.pax8.subscriptions[i].product_id.clone(),
            w.pax8.subscriptions[i].quantity,
        );
        schedule_seats(w, &company, &product, -i64::from(q));
        w.deleted(format!("pax8/subscription/{id}"));
        Ok(empty(StatusCode::NO_CONTENT))
    })
}

async fn order(
    State(s): State<Arc<Shared>>,
    _: Pax8Auth,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Reply {
    let mock = q.get("isMock").is_some_and(|v| v == "true");
    let company_id = body["companyId"].as_str().unwrap_or_default().to_string();
    let Some(items) = body["lineItems"].as_array().filter(|l| !l.is_empty()) else {
        return Err(problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "lineItems must not be empty",
            "/orders",
        ));
    };
    s.write(|w| {
        if !w.pax8.companies.iter().any(|c| c.id == company_id) {
            return Err(problem(StatusCode::UNPROCESSABLE_ENTITY, "companyId does not name a company", "/orders"));
        }
        let mut out_items = Vec::new();
        for li in items {
            let pid = li["productId"].as_str().unwrap_or_default();
            let product = w.pax8.products.iter().find(|p| p.id == pid).ok_or_else(|| problem(StatusCode::UNPROCESSABLE_ENTITY, &format!("productId {pid} is not a product"), "/orders"))?;
            if product.requires_commitment && li["commitmentTermId"].as_str().is_none() {
                return Err(problem(StatusCode::UNPROCESSABLE_ENTITY, &format!("commitmentTermId is required for product {}", product.name), "/orders"));
            }
            let quantity = li["quantity"].as_u64().filter(|q| *q > 0).ok_or_else(|| problem(StatusCode::UNPROCESSABLE_ENTITY, "quantity must be a positive integer", "/orders"))?;
            out_items.push((pid.to_string(), quantity as u32, li.clone()));
        }
        let order_id = uuid::Uuid::new_v4().to_string();
        let mut line_items = Vec::new();
        for (pid, quantity, li) in out_items {
            let sub_id = if mock { Value::Null } else {
                let sub = Pax8Subscription { id: uuid::Uuid::new_v4().to_string(), company_id: company_id.clone(), product_id: pid.clone(), quantity, status: "Active".into(), billing_term: li["billingTerm"].as_str().unwrap_or("Monthly").into(), start_date: Some(crate::shared::now_rfc3339()), ..Default::default() };
                let id = sub.id.clone();
                w.pax8.subscriptions.push(sub);
                schedule_seats(w, &company_id, &pid, i64::from(quantity));
                w.created(format!("pax8/subscription/{id}"));
                json!(id)
            };
            line_items.push(json!({"id": uuid::Uuid::new_v4().to_string(), "productId": pid, "subscriptionId": sub_id, "quantity": quantity,
                "lineItemNumber": li["lineItemNumber"], "billingTerm": li["billingTerm"], "commitmentTermId": li["commitmentTermId"]}));
        }
        let order = json!({"id": order_id, "companyId": company_id, "createdDate": crate::shared::now_rfc3339(), "orderedBy": "Pax8 Partner", "isScheduled": false, "lineItems": line_items});
        if !mock {
            w.pax8.orders.push(order.clone());
            w.created(format!("pax8/order/{order_id}"));
        }
        Ok(reply(StatusCode::OK, order))
    })
}
