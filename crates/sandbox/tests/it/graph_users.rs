//! Graph users: create and its rules, get by id or UPN, $select, paging, $filter, update,
//! synced users, delete, sessions, manager.

use reqwest::Method;
use serde_json::json;

use crate::support::{body, start};

#[tokio::test]
async fn create_enforces_unique_upn_verified_domain_and_password_rules() {
    let env = start().await;
    let t = env.graph().await;
    let u = env
        .create_user(&t, "jose.nunez@contoso.example", Some("AU"))
        .await;
    assert!(u["id"].as_str().unwrap().len() > 30);
    // Same UPN again: the real 400 with ObjectConflict.
    let again = env.send(&t, Method::POST, "/users", json!({"accountEnabled": true, "displayName": "J", "mailNickname": "jn2", "userPrincipalName": "jose.nunez@contoso.example", "passwordProfile": {"password": "Str0ng!Passw0rd"}})).await;
    assert_eq!(again.status(), 400);
    let b = body(again).await;
    assert_eq!(b["error"]["code"], "Request_BadRequest");
    assert_eq!(
        b["error"]["message"],
        "Another object with the same value for property userPrincipalName already exists."
    );
    assert_eq!(b["error"]["details"][0]["code"], "ObjectConflict");
    assert_eq!(b["error"]["details"][0]["target"], "userPrincipalName");
    let bad_domain = env.send(&t, Method::POST, "/users", json!({"accountEnabled": true, "displayName": "X", "mailNickname": "x", "userPrincipalName": "x@gmail.com", "passwordProfile": {"password": "Str0ng!Passw0rd"}})).await;
    assert_eq!(bad_domain.status(), 400);
    let weak = env.send(&t, Method::POST, "/users", json!({"accountEnabled": true, "displayName": "Y", "mailNickname": "y", "userPrincipalName": "y@contoso.example", "passwordProfile": {"password": "password"}})).await;
    assert!(body(weak).await["error"]["message"]
        .as_str()
        .unwrap()
        .contains("password complexity"));
    let missing = env
        .send(&t, Method::POST, "/users", json!({"displayName": "Z"}))
        .await;
    assert_eq!(missing.status(), 400);
    assert_eq!(
        env.counter("contoso/user/jose.nunez@contoso.example").await["created"],
        1
    );
}

#[tokio::test]
async fn get_by_id_or_upn_with_default_and_selected_properties() {
    let env = start().await;
    let t = env.graph().await;
    let by_upn = body(env.get(&t, "/users/megan.bowen@contoso.example").await).await;
    assert_eq!(by_upn["displayName"], "Megan Bowen");
    assert!(
        by_upn.get("accountEnabled").is_none(),
        "not in the default property set"
    );
    let id = by_upn["id"].as_str().unwrap();
    let sel = body(
        env.get(
            &t,
            &format!("/users/{id}?$select=id,accountEnabled,usageLocation,assignedLicenses"),
        )
        .await,
    )
    .await;
    assert_eq!(sel["accountEnabled"], true);
    assert_eq!(sel["usageLocation"], "AU");
    assert!(sel.get("displayName").is_none());
    let missing = env.get(&t, "/users/nobody@contoso.example").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        body(missing).await["error"]["code"],
        "Request_ResourceNotFound"
    );
}

#[tokio::test]
async fn list_pages_with_next_links_and_filters() {
    let env = start().await;
    let t = env.graph().await;
    let mut url = env.url("/graph.microsoft.com/v1.0/users?$top=10&$select=id,userPrincipalName");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page: serde_json::Value = env
            .http
            .get(&url)
            .bearer_auth(&t)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pages += 1;
        seen.extend(
            page["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["userPrincipalName"].as_str().unwrap().to_string()),
        );
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert_eq!((pages, seen.len()), (3, 28));
    let filtered = body(
        env.get(&t, "/users?$filter=startswith(displayName,'Meg')")
            .await,
    )
    .await;
    assert_eq!(filtered["value"].as_array().unwrap().len(), 1);
    let eq = body(
        env.get(
            &t,
            "/users?$filter=userPrincipalName%20eq%20'alex.wilber@contoso.example'",
        )
        .await,
    )
    .await;
    assert_eq!(eq["value"][0]["displayName"], "Alex Wilber");
    assert_eq!(
        env.get(&t, "/users?$filter=displayName%20gt%20'a'")
            .await
            .status(),
        400
    );
}

#[tokio::test]
async fn update_disable_and_synced_users() {
    let env = start().await;
    let t = env.graph().await;
    let r = env
        .send(
            &t,
            Method::PATCH,
            "/users/alex.wilber@contoso.example",
            json!({"accountEnabled": false}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let u = body(
        env.get(
            &t,
            "/users/alex.wilber@contoso.example?$select=accountEnabled",
        )
        .await,
    )
    .await;
    assert_eq!(u["accountEnabled"], false);
    assert_eq!(
        env.counter("contoso/user/alex.wilber@contoso.example")
            .await["changed"],
        1
    );
    // Pradeep Gupta is synced from on-premises AD: the cloud cannot change him.
    let r = env
        .send(
            &t,
            Method::PATCH,
            "/users/pradeep.gupta@contoso.example",
            json!({"department": "X"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(body(r).await["error"]["message"]
        .as_str()
        .unwrap()
        .contains("on-premises mastered"));
    let r = env
        .send(
            &t,
            Method::PATCH,
            "/users/alex.wilber@contoso.example",
            json!({"favouriteColour": "blue"}),
        )
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn delete_revoke_and_manager() {
    let env = start().await;
    let t = env.graph().await;
    let r = env
        .send(
            &t,
            Method::POST,
            "/users/lidia.holloway@contoso.example/revokeSignInSessions",
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(body(r).await["value"], true);
    let mgr = body(
        env.get(&t, "/users/lidia.holloway@contoso.example/manager")
            .await,
    )
    .await;
    assert_eq!(mgr["displayName"], "Megan Bowen");
    let alex = body(env.get(&t, "/users/alex.wilber@contoso.example").await).await;
    let r = env.send(&t, Method::PUT, "/users/lidia.holloway@contoso.example/manager/$ref", json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/users/{}", alex["id"].as_str().unwrap())})).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        body(
            env.get(&t, "/users/lidia.holloway@contoso.example/manager")
                .await
        )
        .await["displayName"],
        "Alex Wilber"
    );
    let r = env
        .send(
            &t,
            Method::DELETE,
            "/users/lidia.holloway@contoso.example",
            json!(null),
        )
        .await;
    assert_eq!(r.status(), 204);
    let again = env
        .send(
            &t,
            Method::DELETE,
            "/users/lidia.holloway@contoso.example",
            json!(null),
        )
        .await;
    assert_eq!(again.status(), 404);
    assert_eq!(
        env.counter("contoso/user/lidia.holloway@contoso.example")
            .await["deleted"],
        1
    );
}
