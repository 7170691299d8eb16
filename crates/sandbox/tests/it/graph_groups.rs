//! Group membership: `$ref` add and remove with Graph's "already exist" and 404 answers,
//! groups Graph cannot change, memberOf, authentication methods, devices.

use reqwest::Method;
use serde_json::json;

use crate::support::{body, start};

async fn group_id(env: &crate::support::Env, t: &str, name: &str) -> String {
    let g = body(
        env.get(
            t,
            &format!(
                "/groups?$filter=displayName%20eq%20'{}'",
                name.replace(' ', "%20")
            ),
        )
        .await,
    )
    .await;
    g["value"][0]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn add_and_remove_members_like_graph() {
    let env = start().await;
    let t = env.graph().await;
    let finance = group_id(&env, &t, "Finance").await;
    let megan = body(env.get(&t, "/users/megan.bowen@contoso.example").await).await;
    let reference = json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{}", megan["id"].as_str().unwrap())});
    let r = env
        .send(
            &t,
            Method::POST,
            &format!("/groups/{finance}/members/$ref"),
            reference.clone(),
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = env
        .send(
            &t,
            Method::POST,
            &format!("/groups/{finance}/members/$ref"),
            reference,
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(body(r).await["error"]["message"], "One or more added object references already exist for the following modified properties: 'members'.");
    let groups = body(
        env.get(&t, "/users/megan.bowen@contoso.example/memberOf")
            .await,
    )
    .await;
    assert!(groups["value"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["displayName"] == "Finance" && g["@odata.type"] == "#microsoft.graph.group"));
    let path = format!(
        "/groups/{finance}/members/{}/$ref",
        megan["id"].as_str().unwrap()
    );
    assert_eq!(
        env.send(&t, Method::DELETE, &path, json!(null))
            .await
            .status(),
        204
    );
    let again = env.send(&t, Method::DELETE, &path, json!(null)).await;
    assert_eq!(again.status(), 404);
    assert!(body(again).await["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&finance));
    assert_eq!(
        env.counter("contoso/group/Finance/member/megan.bowen@contoso.example")
            .await,
        json!({"created": 1, "changed": 0, "deleted": 1})
    );
}

#[tokio::test]
async fn dynamic_and_synced_groups_cannot_be_changed() {
    let env = start().await;
    let t = env.graph().await;
    let megan = body(env.get(&t, "/users/megan.bowen@contoso.example").await).await;
    for name in ["Everyone (dynamic)", "HQ Printers (AD)"] {
        let g = group_id(&env, &t, name).await;
        let path = format!("/groups/{g}/members/{}/$ref", megan["id"].as_str().unwrap());
        assert_eq!(
            env.send(&t, Method::DELETE, &path, json!(null))
                .await
                .status(),
            400,
            "{name}"
        );
    }
}

#[tokio::test]
async fn authentication_methods_follow_graph_rules_and_tap_replaces() {
    let env = start().await;
    let t = env.graph().await;
    // Megan has a password, a default phone method and an authenticator.
    let methods = body(
        env.get(
            &t,
            "/users/megan.bowen@contoso.example/authentication/methods",
        )
        .await,
    )
    .await;
    let list = methods["value"].as_array().unwrap().clone();
    assert_eq!(list.len(), 3);
    let id_of = |ty: &str| {
        list.iter().find(|m| m["@odata.type"] == ty).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let phone = id_of("#microsoft.graph.phoneAuthenticationMethod");
    let app = id_of("#microsoft.graph.microsoftAuthenticatorAuthenticationMethod");
    let password = id_of("#microsoft.graph.passwordAuthenticationMethod");
    let del =
        |c: &str, id: &str| format!("/users/megan.bowen@contoso.example/authentication/{c}/{id}");
    assert_eq!(
        env.send(
            &t,
            Method::DELETE,
            &del("phoneMethods", &phone),
            json!(null)
        )
        .await
        .status(),
        400,
        "default method goes last"
    );
    assert_eq!(
        env.send(
            &t,
            Method::DELETE,
            &del("passwordMethods", &password),
            json!(null)
        )
        .await
        .status(),
        400
    );
    assert_eq!(
        env.send(
            &t,
            Method::DELETE,
            &del("microsoftAuthenticatorMethods", &app),
            json!(null)
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        env.send(
            &t,
            Method::DELETE,
            &del("phoneMethods", &phone),
            json!(null)
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        env.send(
            &t,
            Method::DELETE,
            &del("phoneMethods", &phone),
            json!(null)
        )
        .await
        .status(),
        404
    );
    let tap = env
        .send(
            &t,
            Method::POST,
            "/users/megan.bowen@contoso.example/authentication/temporaryAccessPassMethods",
            json!({"lifetimeInMinutes": 60, "isUsableOnce": true}),
        )
        .await;
    assert_eq!(tap.status(), 201);
    let tap = body(tap).await;
    assert!(tap["temporaryAccessPass"].as_str().unwrap().len() >= 8);
    env.send(
        &t,
        Method::POST,
        "/users/megan.bowen@contoso.example/authentication/temporaryAccessPassMethods",
        json!({}),
    )
    .await;
    let methods = body(
        env.get(
            &t,
            "/users/megan.bowen@contoso.example/authentication/methods",
        )
        .await,
    )
    .await;
    let taps = methods["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["@odata.type"] == "#microsoft.graph.temporaryAccessPassAuthenticationMethod")
        .count();
    assert_eq!(taps, 1, "a new pass replaces the old one");
}

#[tokio::test]
async fn devices_list_wipe_and_retire() {
    let env = start().await;
    let t = env.graph().await;
    let devices = body(
        env.get(&t, "/users/alex.wilber@contoso.example/managedDevices")
            .await,
    )
    .await;
    let list = devices["value"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let by_filter = body(env.get(&t, "/deviceManagement/managedDevices?$filter=userPrincipalName%20eq%20'alex.wilber@contoso.example'").await).await;
    assert_eq!(by_filter["value"].as_array().unwrap().len(), 2);
    let id = list[0]["id"].as_str().unwrap();
    let r = env
        .send(
            &t,
            Method::POST,
            &format!("/deviceManagement/managedDevices/{id}/wipe"),
            json!({"keepEnrollmentData": false, "keepUserData": false}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let d = body(
        env.get(&t, &format!("/deviceManagement/managedDevices/{id}"))
            .await,
    )
    .await;
    assert_eq!(d["managementState"], "wipePending");
    let other = list[1]["id"].as_str().unwrap();
    assert_eq!(
        env.send(
            &t,
            Method::POST,
            &format!("/deviceManagement/managedDevices/{other}/retire"),
            json!(null)
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        env.send(
            &t,
            Method::POST,
            "/deviceManagement/managedDevices/nope/wipe",
            json!({})
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        env.counter(&format!("contoso/device/{id}/wipe")).await["created"],
        1
    );
}
