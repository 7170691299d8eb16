//! Microsoft Graph v1.0 (and beta, which serves the same routes): users, groups, licences,
//! authentication methods, Temporary Access Pass, Intune devices, mailbox settings, mail and
//! JSON batching.

mod batch;
mod devices;
mod groups;
mod licences;
mod methods;
mod users;

use std::collections::HashMap;
use std::sync::Arc;

use axum::routing::{delete, get, post, put};
use axum::Router;

use crate::shared::Shared;

/// Query parameters of a Graph request.
pub type Query = axum::extract::Query<HashMap<String, String>>;

fn api() -> Router<Arc<Shared>> {
    Router::new()
        .route("/users", get(users::list).post(users::create))
        .route(
            "/users/{id}",
            get(users::get).patch(users::update).delete(users::remove),
        )
        .route("/users/{id}/revokeSignInSessions", post(users::revoke))
        .route("/users/{id}/manager", get(users::manager))
        .route(
            "/users/{id}/manager/$ref",
            put(users::set_manager).delete(users::remove_manager),
        )
        .route("/users/{id}/memberOf", get(groups::member_of))
        .route(
            "/users/{id}/memberOf/microsoft.graph.group",
            get(groups::member_of),
        )
        .route("/users/{id}/assignLicense", post(licences::assign))
        .route("/users/{id}/licenseDetails", get(licences::details))
        .route("/users/{id}/authentication/methods", get(methods::list))
        .route(
            "/users/{id}/authentication/temporaryAccessPassMethods",
            post(methods::create_tap),
        )
        .route(
            "/users/{id}/authentication/{collection}/{method}",
            delete(methods::remove),
        )
        .route("/users/{id}/managedDevices", get(devices::for_user))
        .route(
            "/users/{id}/mailboxSettings",
            get(users::mailbox_settings).patch(users::update_mailbox_settings),
        )
        .route("/users/{id}/sendMail", post(users::send_mail))
        .route("/groups", get(groups::list))
        .route("/groups/{id}", get(groups::get))
        .route("/groups/{id}/members", get(groups::members))
        .route("/groups/{id}/members/$ref", post(groups::add_member))
        .route(
            "/groups/{id}/members/{user}/$ref",
            delete(groups::remove_member),
        )
        .route("/subscribedSkus", get(licences::subscribed_skus))
        .route("/deviceManagement/managedDevices", get(devices::list))
        .route("/deviceManagement/managedDevices/{id}", get(devices::get))
        .route(
            "/deviceManagement/managedDevices/{id}/wipe",
            post(devices::wipe),
        )
        .route(
            "/deviceManagement/managedDevices/{id}/retire",
            post(devices::retire),
        )
        .route("/$batch", post(batch::batch))
}

/// Graph under its real host prefix, for v1.0 and beta.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .nest("/graph.microsoft.com/v1.0", api())
        .nest("/graph.microsoft.com/beta", api())
}
