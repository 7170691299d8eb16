//! `intune.*`: wipe or retire every managed device of a user, reporting each device.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};
use tenure_steps::{Call, Outcome, Registry, StepError};

use crate::entra::segment;
use crate::vendors::{step_error, subject, Vendors};

/// Registers the Intune kinds.
pub fn register(registry: &mut Registry, vendors: &Arc<Vendors>) {
    registry.insert(
        "intune.wipe_devices",
        Devices {
            vendors: vendors.clone(),
            action: "wipe",
        },
    );
    registry.insert(
        "intune.retire_devices",
        Devices {
            vendors: vendors.clone(),
            action: "retire",
        },
    );
}

struct Devices {
    vendors: Arc<Vendors>,
    /// `wipe` or `retire`.
    action: &'static str,
}

impl Devices {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let (client, name, _, uid) = subject(&self.vendors, &call).await?;
        let url = format!(
            "{}/users/{}/managedDevices",
            client.endpoints.graph,
            segment(&uid)
        );
        let devices = client
            .list_all(&format!("list the devices of {name}"), &url)
            .await
            .map_err(step_error)?;
        let pending = format!("{}Pending", self.action);
        let mut report = Vec::new();
        let mut sent = 0;
        for d in &devices {
            let id = d["id"].as_str().unwrap_or_default();
            let device = json!({"id": id, "name": d["deviceName"], "os": d["operatingSystem"]});
            // Already pending (an earlier attempt sent it): never send a second wipe.
            if d["managementState"].as_str() == Some(pending.as_str()) {
                report.push(json!({"device": device, "outcome": format!("{} already pending", self.action)}));
                continue;
            }
            let url = format!(
                "{}/deviceManagement/managedDevices/{}/{}",
                client.endpoints.graph,
                segment(id),
                self.action
            );
            let body: Option<Value> = (self.action == "wipe").then(|| {
                json!({
                    "keepEnrollmentData": call.params["keep_enrollment_data"].as_bool().unwrap_or(false),
                    "keepUserData": call.params["keep_user_data"].as_bool().unwrap_or(false),
                })
            });
            let what = format!(
                "{} {} of {name}",
                self.action,
                d["deviceName"].as_str().unwrap_or(id)
            );
            match client
                .send(&what, Method::POST, &url, body.as_ref(), &[])
                .await
            {
                Ok(_) => {
                    sent += 1;
                    report.push(
                        json!({"device": device, "outcome": format!("{} sent", self.action)}),
                    );
                }
                // The device left management meanwhile: nothing to wipe.
                Err(e) if e.is_not_found() => {
                    report.push(json!({"device": device, "outcome": "no longer managed"}))
                }
                Err(e) => return Err(step_error(e)),
            }
        }
        let count = if self.action == "wipe" {
            "wiped"
        } else {
            "retired"
        };
        Ok(Outcome::Done(
            json!({"id": uid, "devices": report, count: sent}),
        ))
    }
}

crate::executor!(Devices);
