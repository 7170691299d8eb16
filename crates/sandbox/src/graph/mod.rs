//! Microsoft Graph v1.0 (and beta, which serves the same routes): users, groups, licences,
//! authentication methods, Temporary Access Pass, Intune devices, mailbox settings, mail,
//! deleted items, delta, the organization and JSON batching. Every Graph response carries
//! `request-id` / `client-request-id`, and anything unrouted answers a Graph-shaped error.

mod batch;
mod devices;
mod directory;
mod expand;
mod groups;
mod licences;
mod methods;
mod query;
mod roles;
mod users;
mod wire;

pub use wire::wire;

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
        .route("/users/$count", get(users::count))
        .route("/users/delta", get(directory::users_delta))
        .route("/users/delta()", get(directory::users_delta))
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
        .route("/users/{id}/memberOf/graph.group", get(groups::member_of))
        .route(
            "/users/{id}/transitiveMemberOf",
            get(groups::transitive_member_of),
        )
        .route(
            "/users/{id}/transitiveMemberOf/microsoft.graph.group",
            get(groups::transitive_member_of),
        )
        .route(
            "/users/{id}/transitiveMemberOf/graph.group",
            get(groups::transitive_member_of),
        )
        .route("/users/{id}/assignLicense", post(licences::assign))
        .route("/users/{id}/licenseDetails", get(licences::details))
        .route("/users/{id}/authentication/methods", get(methods::list))
        .route(
            "/users/{id}/authentication/temporaryAccessPassMethods",
            post(methods::create_tap).get(methods::list_taps),
        )
        .route(
            "/users/{id}/authentication/phoneMethods",
            get(methods::list_phones).post(methods::add_phone),
        )
        .route(
            "/users/{id}/authentication/phoneMethods/{method}",
            get(methods::get_phone).delete(methods::remove_phone),
        )
        .route(
            "/users/{id}/authentication/{collection}/{method}",
            delete(methods::remove),
        )
        .route("/users/{id}/managedDevices", get(devices::for_user))
        .route(
            "/users/{id}/managedDevices/{device}",
            get(devices::get_for_user),
        )
        .route(
            "/users/{id}/managedDevices/{device}/wipe",
            post(devices::wipe_for_user),
        )
        .route(
            "/users/{id}/managedDevices/{device}/retire",
            post(devices::retire_for_user),
        )
        .route(
            "/users/{id}/mailboxSettings",
            get(users::mailbox_settings).patch(users::update_mailbox_settings),
        )
        .route("/users/{id}/sendMail", post(users::send_mail))
        .route("/groups", get(groups::list))
        .route("/groups/{id}", get(groups::get))
        .route("/groups/{id}/members", get(groups::members))
        .route(
            "/groups/{id}/members/microsoft.graph.user",
            get(groups::members),
        )
        .route("/groups/{id}/members/graph.user", get(groups::members))
        .route(
            "/groups/{id}/transitiveMembers",
            get(groups::transitive_members),
        )
        .route(
            "/groups/{id}/transitiveMembers/microsoft.graph.user",
            get(groups::transitive_members),
        )
        .route(
            "/groups/{id}/transitiveMembers/graph.user",
            get(groups::transitive_members),
        )
        .route(
            "/roleManagement/directory/roleAssignments",
            get(roles::list),
        )
        .route(
            "/roleManagement/directory/roleAssignments/{id}",
            get(roles::get),
        )
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
        .route("/organization", get(directory::organization))
        .route("/organization/{id}", get(directory::organization_by_id))
        .route("/directory/deletedItems", get(directory::list_uncast))
        .route(
            "/directory/deletedItems/microsoft.graph.user",
            get(directory::list_users),
        )
        .route(
            "/directory/deletedItems/graph.user",
            get(directory::list_users),
        )
        .route(
            "/directory/deletedItems/{id}",
            get(directory::get).delete(directory::purge),
        )
        .route(
            "/directory/deletedItems/{id}/restore",
            post(directory::restore),
        )
}

/// Graph under its real host prefix, for v1.0 and beta.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .nest("/graph.microsoft.com/v1.0", api())
        .nest("/graph.microsoft.com/beta", api())
}
