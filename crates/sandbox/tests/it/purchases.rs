//! Buying seats: a quantity change at Pax8 or Partner Center shows in `subscribedSkus` only
//! after the purchase delay; Partner Center repeats with the same MS-RequestId apply once.

use serde_json::{json, Value};

use crate::support::{body, start};

#[tokio::test]
async fn pax8_quantity_change_shows_after_the_delay() {
    let env = start().await;
    let r = env.http.post(env.url("/token-manager.pax8.com/oauth/token"))
        .json(&json!({"client_id": "tenure-sandbox", "client_secret": "wrong", "audience": "https://api.pax8.com", "grant_type": "client_credentials"})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(body(r).await["error"], "access_denied");
    let tok: Value = env.http.post(env.url("/token-manager.pax8.com/oauth/token"))
        .json(&json!({"client_id": "tenure-sandbox", "client_secret": "sandbox-secret", "audience": "https://api.pax8.com", "grant_type": "client_credentials"}))
        .send().await.unwrap().json().await.unwrap();
    assert_eq!(tok["expires_in"], 86400);
    let p = tok["access_token"].as_str().unwrap();
    let companies: Value = env
        .http
        .get(env.url("/api.pax8.com/v1/companies?page=0&size=1"))
        .bearer_auth(p)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(companies["page"]["totalElements"], 2);
    assert_eq!(companies["content"].as_array().unwrap().len(), 1);
    let contoso = companies["content"][0]["id"].as_str().unwrap();
    let subs: Value = env
        .http
        .get(env.url(&format!(
            "/api.pax8.com/v1/subscriptions?companyId={contoso}&status=Active"
        )))
        .bearer_auth(p)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sub = &subs["content"][0];
    assert_eq!(sub["quantity"], 5);
    let id = sub["id"].as_str().unwrap();
    let r = env
        .http
        .put(env.url(&format!("/api.pax8.com/v1/subscriptions/{id}")))
        .bearer_auth(p)
        .json(&json!({"quantity": 6}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let g = env.graph().await;
    assert_eq!(
        env.sku(&g, "EXCHANGESTANDARD").await["prepaidUnits"]["enabled"],
        5,
        "not visible yet"
    );
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    assert_eq!(
        env.sku(&g, "EXCHANGESTANDARD").await["prepaidUnits"]["enabled"],
        6
    );
    let bad = env
        .http
        .put(env.url(&format!("/api.pax8.com/v1/subscriptions/{id}")))
        .bearer_auth(p)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert_eq!(body(bad).await["status"], 422);
    // Orders need a commitment term for commitment products.
    let product = sub["productId"].as_str().unwrap();
    let order = env.http.post(env.url("/api.pax8.com/v1/orders")).bearer_auth(p)
        .json(&json!({"companyId": contoso, "lineItems": [{"productId": product, "lineItemNumber": 1, "quantity": 1, "billingTerm": "Monthly"}]})).send().await.unwrap();
    assert_eq!(order.status(), 422);
    assert!(body(order).await["message"]
        .as_str()
        .unwrap()
        .contains("commitmentTermId"));
    let unauth = env
        .http
        .get(env.url("/api.pax8.com/v1/companies"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
}

#[tokio::test]
async fn partner_center_patch_is_idempotent_by_request_id_and_delayed() {
    let env = start().await;
    let form = |secret: &'static str| {
        [
            ("client_id", "tenure-sandbox"),
            ("client_secret", "sandbox-secret"),
            ("grant_type", "refresh_token"),
            ("refresh_token", secret),
            ("scope", "https://api.partnercenter.microsoft.com/.default"),
        ]
    };
    let r = env
        .http
        .post(env.url("/login.microsoftonline.com/partner.example/oauth2/v2.0/token"))
        .form(&form("stale"))
        .send()
        .await
        .unwrap();
    assert!(body(r).await["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS700082"));
    let tok: Value = env
        .http
        .post(env.url("/login.microsoftonline.com/partner.example/oauth2/v2.0/token"))
        .form(&form("sandbox-refresh"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let p = tok["access_token"].as_str().unwrap();
    let customers: Value = env
        .http
        .get(env.url("/api.partnercenter.microsoft.com/v1/customers?size=1"))
        .bearer_auth(p)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(customers["totalCount"], 2);
    let next = &customers["links"]["next"];
    let page2: Value = env
        .http
        .get(next["uri"].as_str().unwrap())
        .bearer_auth(p)
        .header(
            "MS-ContinuationToken",
            next["headers"][0]["value"].as_str().unwrap(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        page2["items"][0]["companyProfile"]["domain"],
        "fabrikam.example"
    );
    let cid = customers["items"][0]["id"].as_str().unwrap();
    let subs: Value = env
        .http
        .get(env.url(&format!(
            "/api.partnercenter.microsoft.com/v1/customers/{cid}/subscriptions"
        )))
        .bearer_auth(p)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut sub = subs["items"][0].clone();
    assert_eq!(sub["quantity"], 10);
    sub["quantity"] = json!(11);
    let url = env.url(&format!(
        "/api.partnercenter.microsoft.com/v1/customers/{cid}/subscriptions/{}",
        sub["id"].as_str().unwrap()
    ));
    for _ in 0..2 {
        let r = env
            .http
            .patch(&url)
            .bearer_auth(p)
            .header("MS-RequestId", "6a1f5c1e-0000-4000-8000-000000000001")
            .json(&sub)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        env.counter(&format!(
            "partner_center/subscription/{}",
            sub["id"].as_str().unwrap()
        ))
        .await["changed"],
        1
    );
    let g = env.graph().await;
    assert_eq!(
        env.sku(&g, "O365_BUSINESS_ESSENTIALS").await["prepaidUnits"]["enabled"],
        10
    );
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    assert_eq!(
        env.sku(&g, "O365_BUSINESS_ESSENTIALS").await["prepaidUnits"]["enabled"],
        11
    );
    let missing = env
        .http
        .get(env.url("/api.partnercenter.microsoft.com/v1/customers/nope/subscriptions"))
        .bearer_auth(p)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(body(missing).await["source"], "PartnerFD");
}

async fn pax8_token(env: &crate::support::Env) -> String {
    let tok: Value = env.http.post(env.url("/token-manager.pax8.com/oauth/token"))
        .json(&json!({"client_id": "tenure-sandbox", "client_secret": "sandbox-secret", "audience": "https://api.pax8.com", "grant_type": "client_credentials"}))
        .send().await.unwrap().json().await.unwrap();
    tok["access_token"].as_str().unwrap().to_string()
}

async fn pc_token(env: &crate::support::Env) -> String {
    let tok: Value = env
        .http
        .post(env.url("/login.microsoftonline.com/partner.example/oauth2/v2.0/token"))
        .form(&[
            ("client_id", "tenure-sandbox"),
            ("client_secret", "sandbox-secret"),
            ("grant_type", "refresh_token"),
            ("refresh_token", "sandbox-refresh"),
            ("scope", "https://api.partnercenter.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tok["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn decreases_follow_the_new_commerce_window_and_can_be_scheduled() {
    let env = crate::support::start_with(|seed| {
        seed["partner_center"]["subscriptions"][0]["legacy"] = json!(false);
    })
    .await;
    // Pax8: the default subscription started 2024-01-01, monthly commitment: outside the window.
    let p = pax8_token(&env).await;
    let subs: Value = env
        .http
        .get(env.url("/api.pax8.com/v1/subscriptions"))
        .bearer_auth(&p)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sub = &subs["content"][0];
    assert_eq!(sub["commitment"]["term"], "Monthly");
    let end = sub["commitment"]["endDate"].as_str().unwrap().to_string();
    assert!(end.ends_with("-01"), "{end}");
    let url = env.url(&format!(
        "/api.pax8.com/v1/subscriptions/{}",
        sub["id"].as_str().unwrap()
    ));
    let r = env
        .http
        .put(&url)
        .bearer_auth(&p)
        .json(&json!({"quantity": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(body(r).await["message"]
        .as_str()
        .unwrap()
        .contains("within 7 days"));
    let r = env
        .http
        .put(&url)
        .bearer_auth(&p)
        .json(&json!({"quantity": 4, "startDate": end}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sub = body(r).await;
    assert_eq!(
        (sub["quantity"].clone(), sub["scheduledChange"].clone()),
        (json!(5), json!({"quantity": 4, "effectiveDate": end}))
    );
    assert_eq!(
        env.counter(&format!(
            "pax8/subscription/{}/scheduled",
            sub["id"].as_str().unwrap()
        ))
        .await["changed"],
        1
    );
    // An increase is allowed at any time.
    let r = env
        .http
        .put(&url)
        .bearer_auth(&p)
        .json(&json!({"quantity": 6}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Partner Center: outside 168 hours a decrease is refused; scheduled instead; a mid-term
    // change deletes the schedule.
    let t = pc_token(&env).await;
    let customers: Value = env
        .http
        .get(env.url("/api.partnercenter.microsoft.com/v1/customers"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cid = customers["items"][0]["id"].as_str().unwrap().to_string();
    let subs: Value = env
        .http
        .get(env.url(&format!(
            "/api.partnercenter.microsoft.com/v1/customers/{cid}/subscriptions"
        )))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sub = subs["items"][0].clone();
    assert_eq!(sub["productType"]["id"], "OnlineServicesNCE");
    assert_eq!(sub["autoRenewEnabled"], true);
    assert!(
        sub["commitmentEndDate"].as_str().unwrap() > sub["effectiveStartDate"].as_str().unwrap()
    );
    let url = env.url(&format!(
        "/api.partnercenter.microsoft.com/v1/customers/{cid}/subscriptions/{}",
        sub["id"].as_str().unwrap()
    ));
    let mut lower = sub.clone();
    lower["quantity"] = json!(9);
    let r = env
        .http
        .patch(&url)
        .bearer_auth(&t)
        .json(&lower)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(body(r).await["code"], 800060);
    let mut schedule = sub.clone();
    schedule["scheduledNextTermInstructions"] = json!({"product": {"productId": "CFQ7TTC0LHRJ", "skuId": "0001", "availabilityId": null, "billingCycle": "monthly", "termDuration": "P1M"}, "quantity": 9});
    let r = env
        .http
        .patch(&url)
        .bearer_auth(&t)
        .json(&schedule)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = body(r).await;
    assert_eq!(
        (
            got["quantity"].clone(),
            got["scheduledNextTermInstructions"]["quantity"].clone()
        ),
        (json!(10), json!(9))
    );
    let mut more = got.clone();
    more["quantity"] = json!(11);
    let r = env
        .http
        .patch(&url)
        .bearer_auth(&t)
        .json(&more)
        .send()
        .await
        .unwrap();
    assert_eq!(
        body(r).await["scheduledNextTermInstructions"],
        Value::Null,
        "a mid-term change deletes the schedule"
    );
}

#[tokio::test]
async fn legacy_offers_and_subscriptions_without_auto_renew_take_no_scheduled_change() {
    for (field, value, code) in [
        ("legacy", json!(true), 800061),
        ("auto_renew", json!(false), 800062),
    ] {
        let env = crate::support::start_with(|seed| {
            seed["partner_center"]["subscriptions"][0][field] = value.clone();
        })
        .await;
        let t = pc_token(&env).await;
        let customers: Value = env
            .http
            .get(env.url("/api.partnercenter.microsoft.com/v1/customers"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cid = customers["items"][0]["id"].as_str().unwrap().to_string();
        let subs: Value = env
            .http
            .get(env.url(&format!(
                "/api.partnercenter.microsoft.com/v1/customers/{cid}/subscriptions"
            )))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut sub = subs["items"][0].clone();
        sub["scheduledNextTermInstructions"] = json!({"product": {}, "quantity": 9});
        let url = env.url(&format!(
            "/api.partnercenter.microsoft.com/v1/customers/{cid}/subscriptions/{}",
            sub["id"].as_str().unwrap()
        ));
        let r = env
            .http
            .patch(&url)
            .bearer_auth(&t)
            .json(&sub)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(body(r).await["code"], code);
    }
}
