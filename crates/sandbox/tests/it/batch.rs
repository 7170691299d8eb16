//! JSON batching: sub-requests run through the same routes; a failed dependency gives 424.

use serde_json::json;

use crate::support::{body, start};

#[tokio::test]
async fn batch_runs_each_request_and_honours_depends_on() {
    let env = start().await;
    let t = env.graph().await;
    let r = env.send(&t, reqwest::Method::POST, "/$batch", json!({"requests": [
        {"id": "1", "method": "GET", "url": "/users/megan.bowen@contoso.example"},
        {"id": "2", "method": "PATCH", "url": "/users/nobody@contoso.example", "body": {"department": "X"}, "headers": {"Content-Type": "application/json"}},
        {"id": "3", "method": "PATCH", "url": "/users/alex.wilber@contoso.example", "body": {"department": "Y"}, "dependsOn": ["2"]},
        {"id": "4", "method": "PATCH", "url": "/users/alex.wilber@contoso.example", "body": {"jobTitle": "Lead"}, "dependsOn": ["1"]}
    ]})).await;
    assert_eq!(r.status(), 200);
    let b = body(r).await;
    let status = |id: &str| {
        b["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .unwrap()["status"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        (status("1"), status("2"), status("3"), status("4")),
        (200, 404, 424, 204)
    );
    let too_many: Vec<_> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    assert_eq!(
        env.send(
            &t,
            reqwest::Method::POST,
            "/$batch",
            json!({"requests": too_many})
        )
        .await
        .status(),
        400
    );
}
