//! Mailboxes: a new user's mailbox appears only after a delay; Exchange's InvokeCommand
//! converts it to shared (warning on repeat), hides it, forwards it, grants FullAccess; auto
//! replies through Exchange and Graph.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{body, start, Env};

async fn exo(env: &Env, token: &str, cmdlet: &str, params: Value) -> reqwest::Response {
    env.http
        .post(env.url("/outlook.office365.com/adminapi/beta/contoso.example/InvokeCommand"))
        .bearer_auth(token)
        .json(&json!({"CmdletInput": {"CmdletName": cmdlet, "Parameters": params}}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_new_mailbox_appears_after_the_delay() {
    let env = start().await;
    let t = env.graph().await;
    let u = env
        .create_user(&t, "new.starter@contoso.example", Some("AU"))
        .await;
    let spb = env.sku(&t, "SPB").await["skuId"].clone();
    env.send(
        &t,
        Method::POST,
        &format!("/users/{}/assignLicense", u["id"].as_str().unwrap()),
        json!({"addLicenses": [{"skuId": spb}], "removeLicenses": []}),
    )
    .await;
    let r = env
        .get(&t, "/users/new.starter@contoso.example/mailboxSettings")
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        body(r).await["error"]["code"],
        "MailboxNotEnabledForRESTAPI"
    );
    let x = env
        .ms_token("contoso", "https://outlook.office365.com/.default")
        .await;
    assert_eq!(
        exo(
            &env,
            &x,
            "Get-Mailbox",
            json!({"Identity": "new.starter@contoso.example"})
        )
        .await
        .status(),
        404
    );
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    assert_eq!(
        env.get(&t, "/users/new.starter@contoso.example/mailboxSettings")
            .await
            .status(),
        200
    );
    let mb = body(
        exo(
            &env,
            &x,
            "Get-Mailbox",
            json!({"Identity": "new.starter@contoso.example"}),
        )
        .await,
    )
    .await;
    assert_eq!(mb["value"][0]["RecipientTypeDetails"], "UserMailbox");
}

#[tokio::test]
async fn convert_to_shared_then_licences_can_go_without_data_loss() {
    let env = start().await;
    let x = env
        .ms_token("contoso", "https://outlook.office365.com/.default")
        .await;
    let id = json!({"Identity": "alex.wilber@contoso.example", "Type": "Shared"});
    let r = exo(&env, &x, "Set-Mailbox", id.clone()).await;
    assert_eq!(r.status(), 200);
    assert!(body(r).await.get("@adminapi.warnings").is_none());
    let again = body(exo(&env, &x, "Set-Mailbox", id).await).await;
    assert!(again["@adminapi.warnings"][0]
        .as_str()
        .unwrap()
        .contains("no settings"));
    let mb = body(
        exo(
            &env,
            &x,
            "Get-Mailbox",
            json!({"Identity": "alex.wilber@contoso.example"}),
        )
        .await,
    )
    .await;
    assert_eq!(mb["value"][0]["RecipientTypeDetails"], "SharedMailbox");
    assert_eq!(
        env.counter("contoso/mailbox/alex.wilber@contoso.example")
            .await["changed"],
        1
    );
    let t = env.graph().await;
    let spb = env.sku(&t, "SPB").await["skuId"].clone();
    env.send(
        &t,
        Method::POST,
        "/users/alex.wilber@contoso.example/assignLicense",
        json!({"addLicenses": [], "removeLicenses": [spb]}),
    )
    .await;
    let mb = body(
        exo(
            &env,
            &x,
            "Get-Mailbox",
            json!({"Identity": "alex.wilber@contoso.example"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        mb["value"][0]["RecipientTypeDetails"], "SharedMailbox",
        "a shared mailbox survives losing its licence"
    );
}

#[tokio::test]
async fn hide_forward_permissions_and_auto_replies() {
    let env = start().await;
    let x = env
        .ms_token("contoso", "https://outlook.office365.com/.default")
        .await;
    let who = "isaiah.langer@contoso.example";
    assert_eq!(
        exo(
            &env,
            &x,
            "Set-Mailbox",
            json!({"Identity": who, "HiddenFromAddressListsEnabled": true})
        )
        .await
        .status(),
        200
    );
    assert_eq!(exo(&env, &x, "Set-Mailbox", json!({"Identity": who, "ForwardingSMTPAddress": "boss@contoso.example", "DeliverToMailboxAndForward": true})).await.status(), 200);
    let grant = json!({"Identity": who, "User": "megan.bowen@contoso.example", "AccessRights": ["FullAccess"], "AutoMapping": true});
    assert_eq!(
        exo(&env, &x, "Add-MailboxPermission", grant.clone())
            .await
            .status(),
        200
    );
    let dup = body(exo(&env, &x, "Add-MailboxPermission", grant).await).await;
    assert!(dup["@adminapi.warnings"][0]
        .as_str()
        .unwrap()
        .contains("already present"));
    let perms = body(exo(&env, &x, "Get-MailboxPermission", json!({"Identity": who})).await).await;
    assert_eq!(perms["value"].as_array().unwrap().len(), 1);
    let ar = json!({"Identity": who, "AutoReplyState": "Enabled", "InternalMessage": "Isaiah has left.", "ExternalAudience": "All"});
    assert_eq!(
        exo(&env, &x, "Set-MailboxAutoReplyConfiguration", ar)
            .await
            .status(),
        200
    );
    let t = env.graph().await;
    let settings = body(env.get(&t, &format!("/users/{who}/mailboxSettings")).await).await;
    assert_eq!(
        settings["automaticRepliesSetting"]["status"],
        "alwaysEnabled"
    );
    assert_eq!(
        settings["automaticRepliesSetting"]["internalReplyMessage"],
        "Isaiah has left."
    );
    let r = env
        .send(
            &t,
            Method::PATCH,
            &format!("/users/{who}/mailboxSettings"),
            json!({"automaticRepliesSetting": {"status": "disabled"}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let unknown = exo(&env, &x, "Remove-Mailbox", json!({"Identity": who})).await;
    assert_eq!(unknown.status(), 400);
    let missing = body(
        exo(
            &env,
            &x,
            "Get-Mailbox",
            json!({"Identity": "ghost@contoso.example"}),
        )
        .await,
    )
    .await;
    assert!(missing["error"]["details"][0]["message"]
        .as_str()
        .unwrap()
        .contains("couldn't be found"));
    // A token for contoso cannot run commands in fabrikam.
    let r = env
        .http
        .post(env.url("/outlook.office365.com/adminapi/beta/fabrikam.example/InvokeCommand"))
        .bearer_auth(&x)
        .json(&json!({"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}
