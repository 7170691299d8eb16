//! Seats at the distributor: finding the tenant's subscription for a SKU at Pax8 or Partner
//! Center (for `licence.assign` to buy a seat), and releasing a seat when a licence is removed
//! (`licence.remove` with `release_seat: true`, api-facts §5 "Seat release on leave").
//!
//! New-commerce subscriptions allow a decrease only in the 7 days (168 hours) after the
//! purchase or the last renewal. So a release has three outcomes:
//!
//! - `released`: inside the window, the quantity is lowered now;
//! - `scheduled`: outside it, the decrease is scheduled for the renewal (Partner Center
//!   `scheduledNextTermInstructions`; Pax8 a `PUT` with `startDate` = the renewal date);
//! - `not_releasable`: a legacy offer or a subscription without auto-renew (nothing to
//!   schedule), or the distributor refused the scheduled change; the reason says which.
//!
//! Looking before acting: a seat is released only while the subscription holds more seats
//! than the tenant uses (after the licence was removed), counted against the quantity already
//! scheduled for the renewal when there is one. A repeat after a crash finds no spare seat (or
//! the decrease already scheduled) and changes nothing; Partner Center's `MS-RequestId` is
//! also stable per step instance. The residual case: a tenant that already had spare seats
//! before the leaver loses one more on a repeat that happens after the first release was
//! applied but before the engine recorded it.

use chrono::{DateTime, Duration, Months, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use tenure_steps::{Call, StepError};
use tenure_vendors::Client;

use crate::vendors::step_error;

/// Product names of common SKUs, as Partner Center names its offers.
const PRODUCT_NAMES: &[(&str, &str)] = &[
    ("SPB", "Microsoft 365 Business Premium"),
    ("O365_BUSINESS_ESSENTIALS", "Microsoft 365 Business Basic"),
    ("O365_BUSINESS_PREMIUM", "Microsoft 365 Business Standard"),
    ("EXCHANGESTANDARD", "Exchange Online (Plan 1)"),
    ("EXCHANGEENTERPRISE", "Exchange Online (Plan 2)"),
    ("ENTERPRISEPACK", "Office 365 E3"),
    ("SPE_E3", "Microsoft 365 E3"),
    ("SPE_E5", "Microsoft 365 E5"),
];

/// The cancellation window after a purchase or renewal.
const WINDOW_HOURS: i64 = 168;

/// A stable GUID-shaped request id from an idempotency key (Partner Center's `MS-RequestId`).
pub fn request_id(key: &str) -> String {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in key.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    let x = format!("{h:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// Every item of a paged Pax8 collection (`page`/`size`, `page.totalPages`).
pub async fn pax8_all(client: &Client, url: &str, what: &str) -> Result<Vec<Value>, StepError> {
    let mut items = Vec::new();
    let mut page = 0;
    loop {
        let sep = if url.contains('?') { '&' } else { '?' };
        let (_, body) = client
            .send(
                what,
                Method::GET,
                &format!("{url}{sep}page={page}&size=200"),
                None,
                &[],
            )
            .await
            .map_err(step_error)?;
        items.extend(body["content"].as_array().cloned().unwrap_or_default());
        page += 1;
        if page >= body["page"]["totalPages"].as_u64().unwrap_or(0) {
            return Ok(items);
        }
    }
}

/// The run tenant's active Pax8 subscription for SKU `part`.
pub async fn pax8_subscription(
    client: &Client,
    call: &Call<'_>,
    part: &str,
) -> Result<Value, StepError> {
    let tenant = call.context["tenant"]["id"].as_str().unwrap_or_default();
    let base = &client.endpoints.pax8;
    let companies = pax8_all(client, &format!("{base}/companies"), "list Pax8 companies").await?;
    let company = companies
        .iter()
        .find(|c| {
            c["externalId"]
                .as_str()
                .is_some_and(|e| e.eq_ignore_ascii_case(tenant))
                || c["name"].as_str() == call.context["tenant"]["name"].as_str()
        })
        .ok_or_else(|| {
            StepError::permanent(
                "pax8_company_not_found",
                format!("no Pax8 company is linked to tenant {tenant}"),
            )
        })?;
    let products = pax8_all(
        client,
        &format!("{base}/products?vendorName=Microsoft"),
        "list Pax8 products",
    )
    .await?;
    let product = products
        .iter()
        .find(|p| {
            p["sku"]
                .as_str()
                .or(p["vendorSku"].as_str())
                .is_some_and(|s| s.eq_ignore_ascii_case(part))
        })
        .ok_or_else(|| {
            StepError::permanent(
                "pax8_product_not_found",
                format!("Pax8 sells no product for SKU {part}"),
            )
        })?;
    let subs = pax8_all(
        client,
        &format!(
            "{base}/subscriptions?companyId={}&productId={}&status=Active",
            company["id"].as_str().unwrap_or(""),
            product["id"].as_str().unwrap_or("")
        ),
        "list Pax8 subscriptions",
    )
    .await?;
    subs.into_iter().next().ok_or_else(|| {
        StepError::permanent(
            "pax8_subscription_not_found",
            format!(
                "{} has no active Pax8 subscription for {part}",
                company["name"].as_str().unwrap_or(tenant)
            ),
        )
    })
}

/// The run tenant's Partner Center customer id and active subscription for SKU `part`.
pub async fn pc_subscription(
    client: &Client,
    call: &Call<'_>,
    part: &str,
) -> Result<(String, Value), StepError> {
    let domain = call.context["tenant"]["domain"]
        .as_str()
        .unwrap_or_default();
    let base = &client.endpoints.partner_center;
    let mut customers = Vec::new();
    let mut next = Some((format!("{base}/customers?size=100"), None::<String>));
    while let Some((url, token)) = next.take() {
        let headers: Vec<(&str, String)> = token
            .map(|t| ("MS-ContinuationToken", t))
            .into_iter()
            .collect();
        let (_, page) = client
            .send(
                "list Partner Center customers",
                Method::GET,
                &url,
                None,
                &headers,
            )
            .await
            .map_err(step_error)?;
        customers.extend(page["items"].as_array().cloned().unwrap_or_default());
        if let Some(link) = page["links"]["next"].as_object() {
            let uri = link["uri"].as_str().unwrap_or_default().to_string();
            let token = link["headers"]
                .as_array()
                .and_then(|h| h.iter().find(|h| h["key"] == "MS-ContinuationToken"))
                .and_then(|h| h["value"].as_str())
                .map(str::to_string);
            next = Some((uri, token));
        }
    }
    let customer = customers
        .iter()
        .find(|c| {
            c["companyProfile"]["domain"]
                .as_str()
                .is_some_and(|d| d.eq_ignore_ascii_case(domain))
        })
        .ok_or_else(|| {
            StepError::permanent(
                "pc_customer_not_found",
                format!("no Partner Center customer has the domain {domain}"),
            )
        })?;
    let cid = customer["id"].as_str().unwrap_or_default().to_string();
    let (_, subs) = client
        .send(
            "list Partner Center subscriptions",
            Method::GET,
            &format!("{base}/customers/{cid}/subscriptions"),
            None,
            &[],
        )
        .await
        .map_err(step_error)?;
    let offer = PRODUCT_NAMES
        .iter()
        .find(|(p, _)| p.eq_ignore_ascii_case(part))
        .map(|(_, n)| *n)
        .unwrap_or(part);
    let sub = subs["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| {
            s["status"] == "active"
                && s["offerName"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(offer))
        })
        .cloned()
        .ok_or_else(|| {
            StepError::permanent(
                "pc_subscription_not_found",
                format!("no active Partner Center subscription for {offer}"),
            )
        })?;
    Ok((cid, sub))
}

/// What a seat release did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// `released`, `scheduled` or `not_releasable`.
    pub outcome: &'static str,
    /// When the seat stops being billed (today, or the renewal), if it does.
    pub date: Option<String>,
    /// Why, in words.
    pub reason: String,
}

impl Release {
    fn released(reason: String) -> Self {
        Release {
            outcome: "released",
            date: Some(Utc::now().format("%Y-%m-%d").to_string()),
            reason,
        }
    }

    fn scheduled(renewal: &str, reason: String) -> Self {
        Release {
            outcome: "scheduled",
            date: Some(renewal.get(..10).unwrap_or(renewal).to_string()),
            reason,
        }
    }

    fn not_releasable(reason: String) -> Self {
        Release {
            outcome: "not_releasable",
            date: None,
            reason,
        }
    }
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d")
                .ok()?
                .and_hms_opt(0, 0, 0)
                .map(|d| d.and_utc())
        })
}

fn term_months(term: &str) -> u32 {
    match term.to_ascii_lowercase().as_str() {
        "p1y" | "annual" | "yearly" => 12,
        "p2y" | "2-year" => 24,
        "p3y" | "3-year" => 36,
        _ => 1,
    }
}

/// Whether `now` is within 168 hours of `term_start`.
fn in_window(term_start: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    term_start.is_some_and(|s| now < s + Duration::hours(WINDOW_HOURS))
}

/// Releases one seat of SKU `part` (`consumed` seats in use after the licence was removed) at
/// Pax8.
pub async fn release_pax8(
    client: &Client,
    call: &Call<'_>,
    part: &str,
    consumed: u64,
) -> Result<Release, StepError> {
    let sub = pax8_subscription(client, call, part).await?;
    let quantity = sub["quantity"].as_u64().unwrap_or(0);
    let url = format!(
        "{}/subscriptions/{}",
        client.endpoints.pax8,
        sub["id"].as_str().unwrap_or("")
    );
    let commitment = sub["commitment"].as_object();
    let renewal = commitment
        .and_then(|c| c.get("endDate"))
        .and_then(Value::as_str)
        .map(str::to_string);
    // The current term began one term before its end.
    let term_start = match (commitment, renewal.as_deref().and_then(parse_time)) {
        (Some(c), Some(end)) => {
            let months = term_months(c.get("term").and_then(Value::as_str).unwrap_or(""));
            end.checked_sub_months(Months::new(months))
        }
        _ => None,
    };
    let now = Utc::now();
    if commitment.is_none() || in_window(term_start, now) {
        if quantity <= consumed {
            return Ok(Release::released(format!(
                "the Pax8 subscription holds no spare {part} seat ({quantity} for {consumed} in use): already released"
            )));
        }
        client
            .send(
                &format!("release a {part} seat at Pax8"),
                Method::PUT,
                &url,
                Some(&json!({"quantity": quantity - 1})),
                &[],
            )
            .await
            .map_err(step_error)?;
        return Ok(Release::released(format!(
            "Pax8 subscription lowered from {quantity} to {} seats",
            quantity - 1
        )));
    }
    let Some(renewal) = renewal else {
        return Ok(Release::not_releasable(
            "the Pax8 subscription shows no commitment end date to schedule the decrease for"
                .into(),
        ));
    };
    let scheduled = sub["scheduledChange"]["quantity"].as_u64();
    let target = scheduled.unwrap_or(quantity);
    if target <= consumed {
        return Ok(match scheduled {
            Some(q) => Release::scheduled(
                &renewal,
                format!("a decrease to {q} seats is already scheduled at Pax8 for the renewal"),
            ),
            None => Release::not_releasable(format!(
                "the Pax8 subscription holds no spare {part} seat ({quantity} for {consumed} in use)"
            )),
        });
    }
    let body = json!({"quantity": target - 1, "startDate": renewal.get(..10).unwrap_or(&renewal)});
    match client
        .send(
            &format!("schedule the release of a {part} seat at Pax8"),
            Method::PUT,
            &url,
            Some(&body),
            &[],
        )
        .await
    {
        Ok(_) => Ok(Release::scheduled(
            &renewal,
            format!(
                "outside the 7-day window: Pax8 lowers the subscription from {target} to {} seats at the renewal",
                target - 1
            ),
        )),
        Err(e) if e.status == Some(422) => Ok(Release::not_releasable(e.message)),
        Err(e) => Err(step_error(e)),
    }
}

/// Releases one seat of SKU `part` (`consumed` seats in use after the licence was removed) at
/// Partner Center.
pub async fn release_partner_center(
    client: &Client,
    call: &Call<'_>,
    part: &str,
    consumed: u64,
) -> Result<Release, StepError> {
    let (cid, sub) = pc_subscription(client, call, part).await?;
    let quantity = sub["quantity"].as_u64().unwrap_or(0);
    let url = format!(
        "{}/customers/{cid}/subscriptions/{}",
        client.endpoints.partner_center,
        sub["id"].as_str().unwrap_or("")
    );
    let key = call.idempotency_key();
    let now = Utc::now();
    let start = sub["effectiveStartDate"].as_str().and_then(parse_time);
    let renewal = sub["commitmentEndDate"].as_str().unwrap_or("").to_string();
    if in_window(start, now) {
        if quantity <= consumed {
            return Ok(Release::released(format!(
                "the Partner Center subscription holds no spare {part} seat ({quantity} for {consumed} in use): already released"
            )));
        }
        let mut body = sub.clone();
        body["quantity"] = json!(quantity - 1);
        client
            .send(
                &format!("release a {part} seat at Partner Center"),
                Method::PATCH,
                &url,
                Some(&body),
                &[("MS-RequestId", request_id(&format!("{key}:release")))],
            )
            .await
            .map_err(step_error)?;
        return Ok(Release::released(format!(
            "Partner Center subscription lowered from {quantity} to {} seats within 168 hours of the term start",
            quantity - 1
        )));
    }
    if sub["productType"]["id"].as_str() != Some("OnlineServicesNCE") {
        return Ok(Release::not_releasable(
            "legacy offer: outside 7 days of purchase or renewal its quantity cannot be lowered, and it takes no scheduled changes".into(),
        ));
    }
    if sub["autoRenewEnabled"] != true {
        return Ok(Release::not_releasable(
            "auto-renew is off: there is no renewal to schedule the decrease for".into(),
        ));
    }
    let scheduled = sub["scheduledNextTermInstructions"]["quantity"].as_u64();
    let target = scheduled.unwrap_or(quantity);
    if target <= consumed {
        return Ok(match scheduled {
            Some(q) => Release::scheduled(
                &renewal,
                format!(
                    "a decrease to {q} seats is already scheduled at Partner Center for the renewal"
                ),
            ),
            None => Release::not_releasable(format!(
                "the Partner Center subscription holds no spare {part} seat ({quantity} for {consumed} in use)"
            )),
        });
    }
    let offer = sub["offerId"].as_str().unwrap_or("");
    let mut ids = offer.split(':');
    let product = json!({
        "productId": ids.next().unwrap_or(""),
        "skuId": ids.next().unwrap_or(""),
        "availabilityId": ids.next(),
        "billingCycle": sub["billingCycle"],
        "termDuration": sub["termDuration"],
    });
    let mut body = sub.clone();
    body["scheduledNextTermInstructions"] = json!({"product": product, "quantity": target - 1});
    match client
        .send(
            &format!("schedule the release of a {part} seat at Partner Center"),
            Method::PATCH,
            &url,
            Some(&body),
            &[("MS-RequestId", request_id(&format!("{key}:schedule")))],
        )
        .await
    {
        Ok(_) => Ok(Release::scheduled(
            &renewal,
            format!(
                "outside the 168-hour window: Partner Center renews the subscription with {} seats instead of {target}",
                target - 1
            ),
        )),
        Err(e) if e.status == Some(400) => Ok(Release::not_releasable(e.message)),
        Err(e) => Err(step_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_168_hours_from_the_term_start() {
        let start = parse_time("2026-11-20T00:00:00Z");
        assert!(in_window(
            start,
            parse_time("2026-11-26T23:00:00Z").unwrap()
        ));
        assert!(!in_window(
            start,
            parse_time("2026-11-27T00:00:00Z").unwrap()
        ));
        assert!(!in_window(None, Utc::now()));
        assert_eq!(term_months("Annual"), 12);
        assert_eq!(term_months("P1M"), 1);
        assert_eq!(parse_time("2026-12-01"), parse_time("2026-12-01T00:00:00Z"));
    }

    #[test]
    fn request_ids_are_stable_guids() {
        let a = request_id("r:s:0");
        assert_eq!(a, request_id("r:s:0"));
        assert_ne!(a, request_id("r:s:1"));
        assert_eq!(a.len(), 36);
    }
}
