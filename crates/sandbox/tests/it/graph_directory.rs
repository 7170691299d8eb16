//! What a tenant reader needs from Graph: directory role assignments (paged, `$select`,
//! `$filter`), `$expand=manager` on the user list (pages of at most 100, as Graph's) and on
//! delta, `manager@delta` when delta selects `manager` (a removal marked `@removed`),
//! group transitive members through nested groups, and guests' `userType`.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{body, start, start_with};

fn values(v: &Value) -> Vec<Value> {
    v["value"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn role_assignments_page_select_and_filter() {
    let env = start().await;
    let t = env.graph().await;
    let all = body(
        env.get(&t, "/roleManagement/directory/roleAssignments")
            .await,
    )
    .await;
    assert_eq!(
        all["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#roleManagement/directory/roleAssignments"
    );
    let items = values(&all);
    assert_eq!(items.len(), 2, "{all}");
    let isaiah = body(env.get(&t, "/users/isaiah.langer@contoso.example").await).await;
    let global = items
        .iter()
        .find(|a| a["principalId"] == isaiah["id"])
        .unwrap();
    assert_eq!(
        global["roleDefinitionId"],
        "62e90394-69f5-4237-9190-012177145e10"
    );
    assert_eq!(global["directoryScopeId"], "/");

    // $select and paging.
    let page = body(
        env.get(
            &t,
            "/roleManagement/directory/roleAssignments?$select=principalId&$top=1",
        )
        .await,
    )
    .await;
    let first = values(&page);
    assert_eq!(first.len(), 1);
    assert!(first[0].get("roleDefinitionId").is_none());
    let next = page["@odata.nextLink"].as_str().unwrap();
    let r = env.http.get(next).bearer_auth(&t).send().await.unwrap();
    assert_eq!(values(&body(r).await).len(), 1);

    // $filter on the principal; unknown properties are Graph's 400.
    let path = format!(
        "/roleManagement/directory/roleAssignments?$filter=principalId eq '{}'",
        isaiah["id"].as_str().unwrap()
    );
    assert_eq!(values(&body(env.get(&t, &path).await).await).len(), 1);
    let r = env
        .get(&t, "/roleManagement/directory/roleAssignments?$select=nope")
        .await;
    assert_eq!(r.status(), 400);
    let id = global["id"].as_str().unwrap();
    let one = body(
        env.get(
            &t,
            &format!("/roleManagement/directory/roleAssignments/{id}"),
        )
        .await,
    )
    .await;
    assert_eq!(one["principalId"], isaiah["id"]);
}

#[tokio::test]
async fn users_expand_manager_in_pages_of_100() {
    let env = start().await;
    let t = env.graph().await;
    let page = body(
        env.get(
            &t,
            "/users?$select=id,userPrincipalName&$expand=manager($select=id,userPrincipalName)&$top=999",
        )
        .await,
    )
    .await;
    let users = values(&page);
    let lidia = users
        .iter()
        .find(|u| u["userPrincipalName"] == "lidia.holloway@contoso.example")
        .unwrap();
    assert_eq!(
        lidia["manager"]["userPrincipalName"],
        "megan.bowen@contoso.example"
    );
    assert_eq!(lidia["manager"]["@odata.type"], "#microsoft.graph.user");
    assert!(lidia["manager"].get("displayName").is_none());
    // No manager: Graph leaves the property out.
    let megan = users
        .iter()
        .find(|u| u["userPrincipalName"] == "megan.bowen@contoso.example")
        .unwrap();
    assert!(megan.get("manager").is_none(), "{megan}");
    let r = env.get(&t, "/users?$expand=memberOf").await;
    assert_eq!(r.status(), 400);

    // With $expand a page holds at most 100 users whatever $top says.
    let env = start_with(|seed| {
        let users = seed["tenants"][0]["users"].as_array_mut().unwrap();
        for i in 0..150 {
            users.push(json!({"id": format!("00000000-0000-4000-8000-{i:012}"),
                "userPrincipalName": format!("bulk.{i}@contoso.example"), "displayName": format!("Bulk {i}"),
                "accountEnabled": true}));
        }
    })
    .await;
    let t = env.graph().await;
    let page = body(
        env.get(&t, "/users?$select=id&$expand=manager&$top=999")
            .await,
    )
    .await;
    assert_eq!(values(&page).len(), 100);
    let next = page["@odata.nextLink"].as_str().unwrap().to_string();
    let rest = body(env.http.get(&next).bearer_auth(&t).send().await.unwrap()).await;
    assert_eq!(values(&rest).len(), 78);
    let plain = body(env.get(&t, "/users?$select=id&$top=999").await).await;
    assert_eq!(values(&plain).len(), 178);
}

#[tokio::test]
async fn delta_tracks_the_manager() {
    let env = start().await;
    let t = env.graph().await;
    let mut url = env.url(
        "/graph.microsoft.com/v1.0/users/delta?$select=userPrincipalName,accountEnabled,manager",
    );
    let mut seen = Vec::new();
    let delta_link = loop {
        let page = body(env.http.get(&url).bearer_auth(&t).send().await.unwrap()).await;
        seen.extend(values(&page));
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break page["@odata.deltaLink"].as_str().unwrap().to_string(),
        }
    };
    let megan = body(env.get(&t, "/users/megan.bowen@contoso.example").await).await;
    let lidia = seen
        .iter()
        .find(|u| u["userPrincipalName"] == "lidia.holloway@contoso.example")
        .unwrap()
        .clone();
    assert_eq!(
        lidia["manager@delta"],
        json!([{"@odata.type": "#microsoft.graph.user", "id": megan["id"]}])
    );
    assert!(lidia.get("displayName").is_none());

    // The manager removed: the next round names the user, the manager marked removed.
    let r = env
        .send(
            &t,
            Method::DELETE,
            "/users/lidia.holloway@contoso.example/manager/$ref",
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let page = body(
        env.http
            .get(&delta_link)
            .bearer_auth(&t)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let changed = values(&page);
    assert_eq!(changed.len(), 1, "{page}");
    assert_eq!(changed[0]["id"], lidia["id"]);
    assert_eq!(
        changed[0]["manager@delta"][0]["@removed"]["reason"],
        "deleted"
    );
    assert_eq!(changed[0]["manager@delta"][0]["id"], megan["id"]);

    // $expand=manager on delta gives the manager inline.
    let page = body(
        env.get(
            &t,
            "/users/delta?$select=userPrincipalName&$expand=manager($select=id,userPrincipalName)",
        )
        .await,
    )
    .await;
    let nestor = values(&page)
        .into_iter()
        .find(|u| u["userPrincipalName"] == "nestor.wilke@contoso.example")
        .unwrap();
    assert!(
        nestor["manager"]["userPrincipalName"].is_string(),
        "{nestor}"
    );
}

#[tokio::test]
async fn transitive_members_and_guests() {
    let env = start_with(|seed| {
        // "Sales" nested in a new group with one direct member.
        let tenant = &mut seed["tenants"][0];
        let sales = tenant["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["displayName"] == "Sales")
            .unwrap()
            .clone();
        let megan = tenant["users"][0]["id"].clone();
        tenant["groups"].as_array_mut().unwrap().push(json!({
            "id": "11111111-2222-4333-8444-555555555555", "displayName": "Protected",
            "securityEnabled": true, "members": [sales["id"], megan]}));
    })
    .await;
    let t = env.graph().await;
    let g = "/groups/11111111-2222-4333-8444-555555555555";
    let direct = body(env.get(&t, &format!("{g}/members?$select=id")).await).await;
    assert_eq!(values(&direct).len(), 1);
    let all = body(
        env.get(
            &t,
            &format!("{g}/transitiveMembers/microsoft.graph.user?$select=id&$top=5"),
        )
        .await,
    )
    .await;
    assert_eq!(
        all["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#users"
    );
    let mut ids: Vec<Value> = values(&all).iter().map(|u| u["id"].clone()).collect();
    let mut next = all["@odata.nextLink"].as_str().map(str::to_string);
    while let Some(url) = next {
        let page = body(env.http.get(&url).bearer_auth(&t).send().await.unwrap()).await;
        ids.extend(values(&page).iter().map(|u| u["id"].clone()));
        next = page["@odata.nextLink"].as_str().map(str::to_string);
    }
    // Megan is in Sales too: counted once (11 Sales members).
    assert_eq!(ids.len(), 11);

    let guests = body(
        env.get(
            &t,
            "/users?$filter=userType eq 'Guest'&$select=userPrincipalName,userType",
        )
        .await,
    )
    .await;
    let guests = values(&guests);
    assert_eq!(guests.len(), 1);
    assert!(guests[0]["userPrincipalName"]
        .as_str()
        .unwrap()
        .contains("#EXT#"));
}
