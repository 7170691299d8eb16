//! Licences: usage location, free seats, group-inherited licences, and the mailbox that is
//! lost when the last Exchange licence leaves a user mailbox that was not converted to shared.

use reqwest::Method;
use serde_json::json;

use crate::support::{body, start};

#[tokio::test]
async fn assignment_needs_usage_location_and_a_free_seat() {
    let env = start().await;
    let t = env.graph().await;
    let spb = env.sku(&t, "SPB").await;
    assert_eq!(
        (
            spb["prepaidUnits"]["enabled"].as_u64(),
            spb["consumedUnits"].as_u64()
        ),
        (Some(25), Some(20))
    );
    let sku_id = spb["skuId"].as_str().unwrap().to_string();
    let nowhere = env
        .create_user(&t, "no.location@contoso.example", None)
        .await;
    let r = env
        .send(
            &t,
            Method::POST,
            &format!("/users/{}/assignLicense", nowhere["id"].as_str().unwrap()),
            json!({"addLicenses": [{"skuId": sku_id, "disabledPlans": []}], "removeLicenses": []}),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        body(r).await["error"]["message"],
        "License assignment cannot be done for user with invalid usage location."
    );
    for i in 0..5 {
        let u = env
            .create_user(&t, &format!("new{i}@contoso.example"), Some("AU"))
            .await;
        let r = env
            .send(
                &t,
                Method::POST,
                &format!("/users/{}/assignLicense", u["id"].as_str().unwrap()),
                json!({"addLicenses": [{"skuId": sku_id}], "removeLicenses": []}),
            )
            .await;
        assert_eq!(r.status(), 200, "seat {i}");
        // Repeating an assignment the user already has is fine and takes no second seat.
        let again = env
            .send(
                &t,
                Method::POST,
                &format!("/users/{}/assignLicense", u["id"].as_str().unwrap()),
                json!({"addLicenses": [{"skuId": sku_id}], "removeLicenses": []}),
            )
            .await;
        assert_eq!(again.status(), 200);
    }
    let sixth = env
        .create_user(&t, "sixth@contoso.example", Some("AU"))
        .await;
    let r = env
        .send(
            &t,
            Method::POST,
            &format!("/users/{}/assignLicense", sixth["id"].as_str().unwrap()),
            json!({"addLicenses": [{"skuId": sku_id}], "removeLicenses": []}),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(body(r).await["error"]["message"]
        .as_str()
        .unwrap()
        .contains("does not have any available licenses"));
    assert_eq!(env.sku(&t, "SPB").await["consumedUnits"], 25);
    let r = env
        .send(
            &t,
            Method::POST,
            "/users/sixth@contoso.example/assignLicense",
            json!({"addLicenses": []}),
        )
        .await;
    assert_eq!(r.status(), 400, "both arrays are required");
}

#[tokio::test]
async fn removing_the_last_exchange_licence_from_a_user_mailbox_loses_it() {
    let env = start().await;
    let t = env.graph().await;
    let spb = env.sku(&t, "SPB").await["skuId"]
        .as_str()
        .unwrap()
        .to_string();
    let r = env
        .send(
            &t,
            Method::POST,
            "/users/alex.wilber@contoso.example/assignLicense",
            json!({"addLicenses": [], "removeLicenses": [spb]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let state = env.state().await;
    let alex = state["tenants"][0]["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["userPrincipalName"] == "alex.wilber@contoso.example")
        .unwrap()
        .clone();
    let mailbox = state["tenants"][0]["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == alex["id"])
        .unwrap()
        .clone();
    assert!(mailbox["pending_deletion"]
        .as_str()
        .unwrap()
        .contains("not converted to shared"));
    assert_eq!(
        env.counter("contoso/mailbox/alex.wilber@contoso.example")
            .await["deleted"],
        1
    );
    let r = env
        .send(
            &t,
            Method::POST,
            "/users/alex.wilber@contoso.example/assignLicense",
            json!({"addLicenses": [], "removeLicenses": [spb]}),
        )
        .await;
    assert_eq!(r.status(), 400, "removing a licence the user does not have");
}

#[tokio::test]
async fn group_inherited_licences_cannot_be_removed_directly() {
    let env = start_with_group_licence().await;
    let t = env.graph().await;
    let ess = env.sku(&t, "O365_BUSINESS_ESSENTIALS").await;
    let r = env
        .send(
            &t,
            Method::POST,
            "/users/megan.bowen@contoso.example/assignLicense",
            json!({"addLicenses": [], "removeLicenses": [ess["skuId"]]}),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(body(r).await["error"]["message"]
        .as_str()
        .unwrap()
        .contains("inherited from a group"));
    let u = body(
        env.get(
            &t,
            "/users/megan.bowen@contoso.example?$select=licenseAssignmentStates",
        )
        .await,
    )
    .await;
    assert!(u["licenseAssignmentStates"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["assignedByGroup"].is_string()));
}

async fn start_with_group_licence() -> crate::support::Env {
    crate::support::start_with(|seed| {
        let sku = seed["tenants"][0]["skus"][2]["sku_id"].clone();
        let megan = seed["tenants"][0]["users"][0]["id"].clone();
        let finance = seed["tenants"][0]["groups"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|g| g["displayName"] == "Finance")
            .unwrap();
        finance["assignedLicenses"] = json!([sku]);
        finance["members"].as_array_mut().unwrap().push(megan);
    })
    .await
}
