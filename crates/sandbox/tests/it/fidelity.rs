//! Issue 17's gaps, found with the official Graph SDK, each pinned by a contract test: every
//! test here failed against the sandbox before the fix.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{body, start, start_with, Env};

const MEGAN: &str = "megan.bowen@contoso.example";

async fn get_with(env: &Env, t: &str, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = env
        .http
        .get(env.url(&format!("/graph.microsoft.com/v1.0{path}")))
        .bearer_auth(t);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn patch_accepts_odata_type_upn_rename_and_business_phones() {
    let env = start().await;
    let t = env.graph().await;
    let u = env.create_user(&t, "pat.ch@contoso.example", None).await;
    let id = u["id"].as_str().unwrap();
    let r = env.send(&t, Method::PATCH, &format!("/users/{id}"), json!({"@odata.type": "#microsoft.graph.user", "jobTitle": "Lead", "businessPhones": ["+61 2 5550 1234"], "city": "Sydney"})).await;
    assert_eq!(r.status(), 204);
    let r = env
        .send(
            &t,
            Method::PATCH,
            &format!("/users/{id}"),
            json!({"userPrincipalName": "pat.renamed@contoso.example"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let got = body(
        env.get(
            &t,
            "/users/pat.renamed@contoso.example?$select=id,jobTitle,businessPhones,city",
        )
        .await,
    )
    .await;
    assert_eq!(got["id"], id);
    assert_eq!(got["businessPhones"], json!(["+61 2 5550 1234"]));
    assert_eq!(got["city"], "Sydney");
    // Renaming onto a taken UPN or an unverified domain fails like Graph.
    let taken = env
        .send(
            &t,
            Method::PATCH,
            &format!("/users/{id}"),
            json!({"userPrincipalName": MEGAN}),
        )
        .await;
    assert_eq!(
        body(taken).await["error"]["details"][0]["code"],
        "ObjectConflict"
    );
    let wrong = env
        .send(
            &t,
            Method::PATCH,
            &format!("/users/{id}"),
            json!({"@odata.type": "#microsoft.graph.group"}),
        )
        .await;
    assert_eq!(wrong.status(), 400);
}

#[tokio::test]
async fn property_types_are_checked() {
    let env = start().await;
    let t = env.graph().await;
    let r = env
        .send(
            &t,
            Method::PATCH,
            &format!("/users/{MEGAN}"),
            json!({"accountEnabled": "yes"}),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(body(r).await["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Edm.Boolean"));
    let r = env.send(&t, Method::POST, "/users", json!({"accountEnabled": "yes", "displayName": "Y", "mailNickname": "y", "userPrincipalName": "y@contoso.example", "passwordProfile": {"password": "Str0ng!Passw0rd"}})).await;
    assert_eq!(r.status(), 400);
    let sel = body(
        env.get(&t, &format!("/users/{MEGAN}?$select=accountEnabled"))
            .await,
    )
    .await;
    assert_eq!(sel["accountEnabled"], true, "unchanged");
}

#[tokio::test]
async fn send_mail_takes_either_casing_and_checks_sender_and_recipients() {
    let env = start().await;
    let t = env.graph().await;
    let msg = |to: &str| json!({"subject": "Hi", "body": {"contentType": "Text", "content": "x"}, "toRecipients": [{"emailAddress": {"address": to}}]});
    let r = env
        .send(
            &t,
            Method::POST,
            &format!("/users/{MEGAN}/sendMail"),
            json!({"Message": msg("alex.wilber@contoso.example"), "SaveToSentItems": false}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let r = env
        .send(
            &t,
            Method::POST,
            &format!("/users/{MEGAN}/sendMail"),
            json!({"message": msg("not-an-address")}),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(body(r).await["error"]["code"], "ErrorInvalidRecipients");
    env.create_user(&t, "no.mailbox@contoso.example", Some("AU"))
        .await;
    let r = env
        .send(
            &t,
            Method::POST,
            "/users/no.mailbox@contoso.example/sendMail",
            json!({"message": msg(MEGAN)}),
        )
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        body(r).await["error"]["code"],
        "MailboxNotEnabledForRESTAPI"
    );
}

#[tokio::test]
async fn advanced_queries_need_consistency_level_and_work_with_it() {
    let env = start().await;
    let t = env.graph().await;
    let ev = [("ConsistencyLevel", "eventual")];
    for path in [
        "/users?$search=%22displayName:megan%22",
        "/users?$count=true",
        "/users?$filter=endswith(mail,'@contoso.example')&$count=true",
    ] {
        let r = get_with(&env, &t, path, &[]).await;
        assert_eq!(r.status(), 400, "{path}");
        assert!(body(r).await["error"]["code"]
            .as_str()
            .unwrap()
            .starts_with("Request_"));
    }
    let found = body(
        get_with(
            &env,
            &t,
            "/users?$search=%22displayName:megan%22&$count=true",
            &ev,
        )
        .await,
    )
    .await;
    assert_eq!(found["@odata.count"], 1);
    assert_eq!(found["value"][0]["displayName"], "Megan Bowen");
    let ends = body(
        get_with(
            &env,
            &t,
            "/users?$filter=endswith(userPrincipalName,'bowen@contoso.example')&$count=true",
            &ev,
        )
        .await,
    )
    .await;
    assert_eq!(ends["value"].as_array().unwrap().len(), 1);
    let sorted = body(
        get_with(
            &env,
            &t,
            "/users?$orderby=displayName%20desc&$select=displayName",
            &[],
        )
        .await,
    )
    .await;
    let names: Vec<String> = sorted["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["displayName"].as_str().unwrap().to_lowercase())
        .collect();
    let mut want = names.clone();
    want.sort();
    want.reverse();
    assert_eq!(names, want);
    // Sorting by a non-basic property is an advanced query.
    assert_eq!(
        get_with(&env, &t, "/users?$orderby=jobTitle", &[])
            .await
            .status(),
        400
    );
    let count = get_with(&env, &t, "/users/$count", &ev)
        .await
        .text()
        .await
        .unwrap();
    assert!(count.parse::<u32>().unwrap() > 20);
}

#[tokio::test]
async fn top_and_select_are_validated_and_members_page() {
    let env = start().await;
    let t = env.graph().await;
    assert_eq!(env.get(&t, "/users?$top=1000").await.status(), 400);
    assert_eq!(env.get(&t, "/users?$top=999").await.status(), 200);
    let r = env.get(&t, "/users?$select=nonsense").await;
    assert_eq!(r.status(), 400);
    assert!(body(r).await["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nonsense"));
    assert_eq!(
        env.get(&t, &format!("/users/{MEGAN}?$select=nonsense"))
            .await
            .status(),
        400
    );
    let groups = body(
        env.get(&t, "/groups?$filter=displayName%20eq%20'All%20Staff'")
            .await,
    )
    .await;
    let gid = groups["value"][0]["id"].as_str().unwrap().to_string();
    let mut url = env.url(&format!(
        "/graph.microsoft.com/v1.0/groups/{gid}/members?$top=5&$select=id"
    ));
    let mut seen = Vec::new();
    loop {
        let page = body(env.http.get(&url).bearer_auth(&t).send().await.unwrap()).await;
        let items = page["value"].as_array().unwrap();
        assert!(items.len() <= 5);
        seen.extend(items.iter().map(|u| u["id"].clone()));
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert!(seen.len() > 5, "All Staff has more than one page of 5");
}

#[tokio::test]
async fn routes_graph_has_are_served_and_unknown_ones_answer_graph_errors() {
    let env = start().await;
    let t = env.graph().await;
    for path in [
        format!("/users/{MEGAN}/memberOf/graph.group"),
        format!("/users/{MEGAN}/memberOf/microsoft.graph.group"),
        format!("/users/{MEGAN}/transitiveMemberOf"),
        format!("/users/{MEGAN}/transitiveMemberOf/microsoft.graph.group"),
        format!("/users/{MEGAN}/authentication/phoneMethods"),
        format!("/users/{MEGAN}/authentication/temporaryAccessPassMethods"),
        "/organization".to_string(),
        "/directory/deletedItems/microsoft.graph.user".to_string(),
        "/users/delta".to_string(),
        "/users/delta()".to_string(),
    ] {
        let r = env.get(&t, &path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert!(body(r).await["value"].is_array(), "{path}");
    }
    let devices = body(env.get(&t, &format!("/users/{MEGAN}/managedDevices")).await).await;
    let device = devices["value"][0]["id"].as_str().unwrap();
    assert_eq!(
        env.get(&t, &format!("/users/{MEGAN}/managedDevices/{device}"))
            .await
            .status(),
        200
    );
    let wipe = env
        .send(
            &t,
            Method::POST,
            &format!("/users/{MEGAN}/managedDevices/{device}/wipe"),
            json!({"keepUserData": false}),
        )
        .await;
    assert_eq!(wipe.status(), 204);
    let other = env
        .get(
            &t,
            &format!("/users/alex.wilber@contoso.example/managedDevices/{device}"),
        )
        .await;
    assert_eq!(other.status(), 404, "not alex's device");
    let phone = env
        .send(
            &t,
            Method::POST,
            "/users/alex.wilber@contoso.example/authentication/phoneMethods",
            json!({"phoneNumber": "+61 412345678", "phoneType": "mobile"}),
        )
        .await;
    assert_eq!(phone.status(), 201);
    let bad = env
        .send(
            &t,
            Method::POST,
            "/users/alex.wilber@contoso.example/authentication/phoneMethods",
            json!({"phoneNumber": "0412 345 678", "phoneType": "office"}),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let org = body(env.get(&t, "/organization").await).await;
    assert_eq!(
        org["value"][0]["verifiedDomains"][0]["name"],
        "contoso.example"
    );
    // Unknown segments and methods: Graph-shaped errors, never an empty body.
    let unknown = env.get(&t, "/users/x/noSuchThing/at/all").await;
    assert_eq!(unknown.status(), 400);
    assert_eq!(body(unknown).await["error"]["code"], "BadRequest");
    let method = env.send(&t, Method::PUT, "/users", json!({})).await;
    assert_eq!(method.status(), 405);
    assert!(body(method).await["error"]["innerError"]["request-id"].is_string());
    assert_eq!(
        env.get(&t, "/directory/deletedItems").await.status(),
        400,
        "the cast is required"
    );
}

#[tokio::test]
async fn deleted_users_can_be_restored_or_purged_within_30_days() {
    let env = start_with(|seed| {
        let old = json!({"id": "00000000-0000-0000-0000-0000000000aa", "userPrincipalName": "gone@contoso.example",
                         "displayName": "Gone", "deleted_at_ms": 1000, "deletedDateTime": "1970-01-01T00:00:01Z"});
        seed["tenants"][0]["deleted_users"] = json!([old]);
    })
    .await;
    let t = env.graph().await;
    let u = env
        .create_user(&t, "re.hire@contoso.example", Some("AU"))
        .await;
    let id = u["id"].as_str().unwrap();
    assert_eq!(
        env.send(&t, Method::DELETE, &format!("/users/{id}"), json!(null))
            .await
            .status(),
        204
    );
    let listed = body(
        env.get(&t, "/directory/deletedItems/microsoft.graph.user")
            .await,
    )
    .await;
    let ids: Vec<&str> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id], "the user deleted 1970 is past the 30 days");
    let item = body(env.get(&t, &format!("/directory/deletedItems/{id}")).await).await;
    assert!(item["deletedDateTime"].is_string());
    let restored = env
        .send(
            &t,
            Method::POST,
            &format!("/directory/deletedItems/{id}/restore"),
            json!(null),
        )
        .await;
    assert_eq!(restored.status(), 200);
    assert_eq!(
        env.get(&t, "/users/re.hire@contoso.example").await.status(),
        200
    );
    env.send(&t, Method::DELETE, &format!("/users/{id}"), json!(null))
        .await;
    assert_eq!(
        env.send(
            &t,
            Method::DELETE,
            &format!("/directory/deletedItems/{id}"),
            json!(null)
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        env.get(&t, &format!("/directory/deletedItems/{id}"))
            .await
            .status(),
        404
    );
    assert_eq!(
        env.counter("contoso/user/re.hire@contoso.example/restore")
            .await["created"],
        1
    );
}

#[tokio::test]
async fn delta_reports_changes_and_removals_since_a_token() {
    let env = start().await;
    let t = env.graph().await;
    let mut url = env.url("/graph.microsoft.com/v1.0/users/delta?$select=displayName");
    let delta_link = loop {
        let page = body(env.http.get(&url).bearer_auth(&t).send().await.unwrap()).await;
        if let Some(d) = page["@odata.deltaLink"].as_str() {
            break d.to_string();
        }
        url = page["@odata.nextLink"].as_str().unwrap().to_string();
    };
    assert!(delta_link.contains("$deltatoken="));
    let quiet = body(
        env.http
            .get(&delta_link)
            .bearer_auth(&t)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(quiet["value"], json!([]));
    let u = env.create_user(&t, "del.ta@contoso.example", None).await;
    env.send(&t, Method::DELETE, &format!("/users/{MEGAN}"), json!(null))
        .await;
    let next = body(
        env.http
            .get(quiet["@odata.deltaLink"].as_str().unwrap())
            .bearer_auth(&t)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let items = next["value"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], u["id"]);
    assert_eq!(items[0]["displayName"], "del.ta");
    assert_eq!(items[1]["@removed"], json!({"reason": "changed"}));
    assert_eq!(
        env.get(&t, "/users/delta?$deltatoken=garbage")
            .await
            .status(),
        400
    );
}

#[tokio::test]
async fn replication_lag_hides_new_users_for_a_while_when_configured() {
    let env = start().await;
    let t = env.graph().await;
    let cfg = env
        .http
        .post(env.url("/_sandbox/config"))
        .json(&json!({"replication": {"user_ms": 600, "exchange_ms": 900}}))
        .send()
        .await
        .unwrap();
    assert_eq!(body(cfg).await["replication"]["user_ms"], 600);
    let u = env
        .create_user(&t, "la.g@contoso.example", Some("AU"))
        .await;
    let id = u["id"].as_str().unwrap();
    let r = env.get(&t, &format!("/users/{id}")).await;
    assert_eq!(r.status(), 404);
    assert_eq!(body(r).await["error"]["code"], "Request_ResourceNotFound");
    let dup = env.send(&t, Method::POST, "/users", json!({"accountEnabled": true, "displayName": "L", "mailNickname": "lag2", "userPrincipalName": "la.g@contoso.example", "passwordProfile": {"password": "Str0ng!Passw0rd"}})).await;
    assert_eq!(dup.status(), 400, "the directory already holds the UPN");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(env.get(&t, &format!("/users/{id}")).await.status(), 200);
    // Off by default: a fresh sandbox sees a new user at once.
    let fresh = start().await;
    let ft = fresh.graph().await;
    let v = fresh.create_user(&ft, "no.lag@contoso.example", None).await;
    assert_eq!(
        fresh
            .get(&ft, &format!("/users/{}", v["id"].as_str().unwrap()))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn batch_forwards_inner_headers_and_keeps_the_version() {
    let env = start().await;
    let t = env.graph().await;
    let r = env.http.post(env.url("/graph.microsoft.com/beta/$batch")).bearer_auth(&t).json(&json!({"requests": [
        {"id": "1", "method": "GET", "url": "/users?$search=%22displayName:megan%22", "headers": {"ConsistencyLevel": "eventual"}},
        {"id": "2", "method": "GET", "url": "/users?$search=%22displayName:megan%22"},
        {"id": "3", "method": "GET", "url": "/users?$top=1"}
    ]})).send().await.unwrap();
    let b = body(r).await;
    let resp = |id: &str| {
        b["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(resp("1")["status"], 200);
    assert_eq!(resp("2")["status"], 400);
    let next = resp("3")["body"]["@odata.nextLink"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(next.contains("/graph.microsoft.com/beta/users"), "{next}");
}

#[tokio::test]
async fn responses_carry_request_ids_challenges_and_discovery() {
    let env = start().await;
    let t = env.graph().await;
    let r = get_with(
        &env,
        &t,
        &format!("/users/{MEGAN}"),
        &[("client-request-id", "my-id-1")],
    )
    .await;
    assert_eq!(r.headers()["client-request-id"], "my-id-1");
    assert!(r.headers().contains_key("request-id"));
    let r = get_with(
        &env,
        &t,
        "/users/nobody@contoso.example",
        &[("client-request-id", "my-id-2")],
    )
    .await;
    let request_id = r.headers()["request-id"].to_str().unwrap().to_string();
    let b: Value = body(r).await;
    assert_eq!(b["error"]["innerError"]["client-request-id"], "my-id-2");
    assert_eq!(b["error"]["innerError"]["request-id"], request_id);
    let unauth = env
        .http
        .get(env.url("/graph.microsoft.com/v1.0/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
    assert!(unauth.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let oidc = body(
        env.http
            .get(env.url(
                "/login.microsoftonline.com/contoso.example/v2.0/.well-known/openid-configuration",
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        oidc["token_endpoint"],
        env.url("/login.microsoftonline.com/contoso.example/oauth2/v2.0/token")
    );
    assert!(oidc["issuer"]
        .as_str()
        .unwrap()
        .starts_with("https://login.microsoftonline.com/"));
}
