//! The simulated world: every vendor's state in one serializable value. The seed file is this
//! same shape with most fields optional, so a saved state is also a valid seed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Everything the sandbox knows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct World {
    /// Delays and limits.
    pub settings: Settings,
    /// The app credentials every vendor accepts.
    pub credentials: Credentials,
    /// Managed Microsoft 365 tenants.
    pub tenants: Vec<Tenant>,
    /// Pax8 companies, products and subscriptions.
    pub pax8: Pax8,
    /// Partner Center customers and subscriptions.
    pub partner_center: PartnerCenter,
    /// HaloPSA clients, users (contacts), tickets and actions (notes).
    pub halo: Psa,
    /// ConnectWise Manage companies, contacts, tickets and notes.
    pub connectwise: Psa,
    /// Autotask companies, contacts, tickets and notes.
    pub autotask: Psa,
    /// Password Pusher pushes.
    pub pushes: Vec<Push>,
    /// Teams webhook posts and emails received.
    pub inbox: Inbox,
    /// Seat purchases not yet visible in `subscribedSkus`.
    pub pending_seats: Vec<PendingSeat>,
    /// Per entity: how many times it was created, changed and deleted.
    pub counters: BTreeMap<String, Counter>,
    /// The directory's change sequence: every user change takes the next number (delta queries).
    pub change_seq: u64,
}

/// Configurable delays and sizes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// How long a seat bought at Pax8 or Partner Center takes to show in `subscribedSkus`.
    pub purchase_delay_ms: u64,
    /// How long after its first Exchange licence a user's mailbox appears.
    pub mailbox_delay_ms: u64,
    /// Lifetime of issued access tokens.
    pub token_lifetime_s: u64,
    /// Default Graph page size.
    pub page_size: usize,
    /// Simulated replication lag per entity (all zero, i.e. off, unless configured).
    pub replication: Replication,
}

/// How long a change takes to be seen, per entity, like a real directory's replication.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Replication {
    /// A new user answers 404 to Graph (and is missing from lists and references) for this long
    /// after its creation.
    pub user_ms: u64,
    /// A new user is unknown to Exchange Online cmdlets (as a mailbox or a trustee) for this
    /// long after its creation.
    pub exchange_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            purchase_delay_ms: 1500,
            mailbox_delay_ms: 1000,
            token_lifetime_s: 3599,
            page_size: 100,
            replication: Replication::default(),
        }
    }
}

/// App credentials. Any other secret gets the vendor's real error.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Credentials {
    /// OAuth client id (Entra, Pax8, Halo) and ConnectWise `clientId` header.
    pub client_id: String,
    /// OAuth client secret; also the ConnectWise private key and the Autotask secret.
    pub client_secret: String,
    /// The Partner Center refresh token.
    pub refresh_token: String,
    /// ConnectWise company id and public key (`company+public:private` basic auth).
    pub connectwise_company: String,
    /// ConnectWise public key.
    pub connectwise_public_key: String,
    /// Autotask API user name.
    pub autotask_user: String,
    /// Autotask integration code.
    pub autotask_integration_code: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials {
            client_id: "tenure-sandbox".into(),
            client_secret: "sandbox-secret".into(),
            refresh_token: "sandbox-refresh".into(),
            connectwise_company: "tenure".into(),
            connectwise_public_key: "tenure-sandbox".into(),
            autotask_user: "tenure-sandbox@autotask.example".into(),
            autotask_integration_code: "tenure-sandbox".into(),
        }
    }
}

/// One Microsoft 365 tenant.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Tenant {
    /// Short id runbooks use (`contoso`).
    pub id: String,
    /// The directory (tenant) GUID.
    pub tenant_id: String,
    /// Display name.
    pub name: String,
    /// Verified domains; the first is the default.
    pub domains: Vec<String>,
    /// Users.
    pub users: Vec<User>,
    /// Soft-deleted users (restorable for 30 days, `directory/deletedItems`).
    pub deleted_users: Vec<User>,
    /// Users deleted for good (purged or past 30 days), kept as tombstones for delta queries.
    pub purged_users: Vec<Tombstone>,
    /// Groups.
    pub groups: Vec<Group>,
    /// Subscribed SKUs.
    pub skus: Vec<Sku>,
    /// Intune managed devices.
    pub devices: Vec<Device>,
    /// Exchange Online mailboxes.
    pub mailboxes: Vec<Mailbox>,
    /// Directory role assignments (`roleManagement/directory/roleAssignments`).
    pub role_assignments: Vec<RoleAssignment>,
}

/// A directory role assigned to a principal (a user, here) at the tenant scope.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RoleAssignment {
    /// Assignment id.
    pub id: String,
    /// The role holder's object id.
    pub principal_id: String,
    /// The role definition's id (its template id for built-in roles, e.g. Global
    /// Administrator `62e90394-69f5-4237-9190-012177145e10`).
    pub role_definition_id: String,
    /// The scope: `/` for the whole tenant.
    pub directory_scope_id: String,
}

/// An Entra ID user.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct User {
    /// Object id.
    pub id: String,
    /// Sign-in name.
    pub user_principal_name: String,
    /// Display name.
    pub display_name: String,
    /// First name.
    pub given_name: Option<String>,
    /// Last name.
    pub surname: Option<String>,
    /// Mail alias.
    pub mail_nickname: Option<String>,
    /// Primary email.
    pub mail: Option<String>,
    /// Department.
    pub department: Option<String>,
    /// Job title.
    pub job_title: Option<String>,
    /// Country code needed for licences.
    pub usage_location: Option<String>,
    /// Office.
    pub office_location: Option<String>,
    /// Company name.
    pub company_name: Option<String>,
    /// HR id.
    pub employee_id: Option<String>,
    /// Mobile phone.
    pub mobile_phone: Option<String>,
    /// Whether sign-in is allowed.
    pub account_enabled: bool,
    /// Owned by on-premises AD (read-only in the cloud).
    pub on_premises_sync_enabled: bool,
    /// The manager's object id.
    pub manager_id: Option<String>,
    /// The manager removed by the user's last change, if it was a removal: a delta query
    /// reports it as a removed `manager@delta` entry.
    pub removed_manager_id: Option<String>,
    /// `Member` (the default when absent) or `Guest` (an invited external user).
    pub user_type: Option<String>,
    /// Directly assigned SKU ids.
    pub assigned_licenses: Vec<String>,
    /// When the password was last set (never the password itself).
    pub password_last_set: Option<String>,
    /// When sessions were last revoked.
    pub sign_in_sessions_valid_from: Option<String>,
    /// Registered authentication methods.
    pub auth_methods: Vec<AuthMethod>,
    /// Creation time.
    pub created_date_time: Option<String>,
    /// Phone numbers (Graph allows at most one).
    pub business_phones: Vec<String>,
    /// Further simple properties set by create or update (`city`, `country`, `employeeType`, ...).
    pub extra: BTreeMap<String, Value>,
    /// When it was soft-deleted (RFC 3339), while in deleted items.
    pub deleted_date_time: Option<String>,
    /// When it was soft-deleted (unix ms), for the 30-day window.
    pub deleted_at_ms: u64,
    /// Graph does not see it before this time (unix ms; replication lag).
    pub visible_at_ms: u64,
    /// Exchange Online does not see it before this time (unix ms; replication lag).
    pub exchange_visible_at_ms: u64,
    /// The directory change sequence number of its last change (delta queries).
    pub version: u64,
}

/// What remains of a user deleted for good: enough to report it to a delta query.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Tombstone {
    /// Object id.
    pub id: String,
    /// The change sequence number of the purge.
    pub version: u64,
}

/// One authentication method of a user.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthMethod {
    /// Method id.
    pub id: String,
    /// Graph type name without the namespace, e.g. `phoneAuthenticationMethod`.
    pub kind: String,
    /// Whether it is the default MFA method.
    pub is_default: bool,
    /// Phone methods: the number, `+{country code} {number}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// Phone methods: `mobile`, `alternateMobile` or `office`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_type: Option<String>,
}

/// An Entra group.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Group {
    /// Object id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// `Unified`, `DynamicMembership`.
    pub group_types: Vec<String>,
    /// Mail-enabled.
    pub mail_enabled: bool,
    /// Security-enabled.
    pub security_enabled: bool,
    /// Synced from on-premises AD.
    pub on_premises_sync_enabled: bool,
    /// Member user ids.
    pub members: Vec<String>,
    /// SKU ids every member inherits (group-based licensing).
    pub assigned_licenses: Vec<String>,
}

/// Where a SKU's seats are bought.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatSource {
    /// Bought from Microsoft directly.
    #[default]
    Direct,
    /// Bought through Pax8.
    Pax8,
    /// Bought through Partner Center.
    PartnerCenter,
}

/// A subscribed SKU.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Sku {
    /// SKU GUID.
    pub sku_id: String,
    /// Part number, e.g. `SPB`.
    pub sku_part_number: String,
    /// Seats paid for.
    pub enabled: u32,
    /// Where seats come from.
    pub source: SeatSource,
    /// Whether it includes an Exchange Online mailbox.
    pub includes_exchange: bool,
}

/// An Intune managed device.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Device {
    /// Device id.
    pub id: String,
    /// Name.
    pub device_name: String,
    /// Windows, iOS, Android, macOS.
    pub operating_system: String,
    /// Owner's object id.
    pub user_id: String,
    /// Owner's UPN.
    pub user_principal_name: String,
    /// Serial number.
    pub serial_number: String,
    /// `company` or `personal`.
    pub managed_device_owner_type: String,
    /// Commands sent to it (wipe, retire) with their time.
    pub actions: Vec<DeviceAction>,
}

/// A command sent to a device.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceAction {
    /// `wipe` or `retire`.
    pub action: String,
    /// When.
    pub at: String,
    /// Options sent with it.
    pub options: Value,
}

/// An Exchange Online mailbox.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Mailbox {
    /// Owner's object id.
    pub user_id: String,
    /// Primary SMTP address.
    pub primary_smtp_address: String,
    /// `UserMailbox` or `SharedMailbox`.
    pub recipient_type_details: String,
    /// Hidden from the address lists.
    pub hidden_from_address_lists_enabled: bool,
    /// External forwarding address.
    pub forwarding_smtp_address: Option<String>,
    /// Deliver and forward.
    pub deliver_to_mailbox_and_forward: bool,
    /// FullAccess grants.
    pub full_access: Vec<Permission>,
    /// Automatic replies.
    pub auto_reply: AutoReply,
    /// When the mailbox becomes visible (unix ms); provisioning delay.
    pub available_at_ms: u64,
    /// Set when the mailbox lost its data (last licence removed while a user mailbox).
    pub pending_deletion: Option<String>,
}

/// A mailbox permission.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Permission {
    /// Grantee.
    pub user: String,
    /// Rights.
    pub access_rights: Vec<String>,
    /// Outlook automapping.
    pub automapping: bool,
}

/// Automatic reply configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoReply {
    /// `Disabled`, `Enabled`, `Scheduled`.
    pub state: String,
    /// Internal message.
    pub internal_message: String,
    /// External message.
    pub external_message: String,
    /// `None`, `Known`, `All`.
    pub external_audience: String,
    /// Start time.
    pub start_time: Option<String>,
    /// End time.
    pub end_time: Option<String>,
}

/// Pax8 state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Pax8 {
    /// Companies (one per managed tenant).
    pub companies: Vec<Pax8Company>,
    /// Products.
    pub products: Vec<Pax8Product>,
    /// Subscriptions.
    pub subscriptions: Vec<Pax8Subscription>,
    /// Orders placed.
    pub orders: Vec<Value>,
}

/// A Pax8 company.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Pax8Company {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// The sandbox tenant it is.
    pub tenant: String,
    /// `Active`.
    pub status: String,
}

/// A Pax8 product.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Pax8Product {
    /// UUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// `Microsoft`.
    pub vendor_name: String,
    /// The Microsoft SKU part number it provides.
    pub sku: String,
    /// Whether orders need a `commitmentTermId`.
    pub requires_commitment: bool,
}

/// A Pax8 subscription.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Pax8Subscription {
    /// UUID.
    pub id: String,
    /// Company UUID.
    pub company_id: String,
    /// Product UUID.
    pub product_id: String,
    /// Seats.
    pub quantity: u32,
    /// `Active`, `Cancelled`.
    pub status: String,
    /// `Monthly`, `Annual`.
    pub billing_term: String,
    /// When the subscription started (RFC 3339; default 2024-01-01): terms follow each other
    /// from here, and a decrease is allowed in the first 7 days of each.
    pub start_date: Option<String>,
    /// The commitment term (`Monthly`, `Annual`); none for a product without commitment
    /// (default: the billing term when the product requires a commitment).
    pub commitment_term: Option<String>,
    /// A quantity decrease scheduled for the renewal (`PUT` with `startDate` = the term's end).
    pub scheduled_quantity: Option<u32>,
}

/// Partner Center state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PartnerCenter {
    /// Customers (one per managed tenant).
    pub customers: Vec<PcCustomer>,
    /// Subscriptions.
    pub subscriptions: Vec<PcSubscription>,
}

/// A Partner Center customer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PcCustomer {
    /// Customer id (the tenant GUID).
    pub id: String,
    /// The sandbox tenant it is.
    pub tenant: String,
    /// Default domain.
    pub domain: String,
    /// Company name.
    pub company_name: String,
}

/// A Partner Center subscription.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PcSubscription {
    /// Subscription id.
    pub id: String,
    /// Customer id.
    pub customer_id: String,
    /// Offer id.
    pub offer_id: String,
    /// Offer name.
    pub offer_name: String,
    /// The Microsoft SKU part number it provides.
    pub sku: String,
    /// Seats.
    pub quantity: u32,
    /// `active`, `suspended`, `deleted`.
    pub status: String,
    /// `monthly`.
    pub billing_cycle: String,
    /// Start of the first term (RFC 3339; default 2024-01-01): terms follow each other from
    /// here, and a decrease is allowed in the first 168 hours of each.
    pub effective_start: Option<String>,
    /// `P1M` (default) or `P1Y`.
    pub term_duration: Option<String>,
    /// Whether the subscription renews (default true); scheduled changes need it.
    pub auto_renew: Option<bool>,
    /// A legacy (not new-commerce) offer: no scheduled changes.
    pub legacy: bool,
    /// `scheduledNextTermInstructions`, applied at the renewal.
    pub scheduled: Option<Value>,
}

/// One PSA's state (Halo, ConnectWise and Autotask share the shape).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Psa {
    /// Clients / companies, each mapped to a sandbox tenant.
    pub clients: Vec<PsaClient>,
    /// Contacts.
    pub contacts: Vec<PsaContact>,
    /// Tickets.
    pub tickets: Vec<PsaTicket>,
    /// Ticket notes.
    pub notes: Vec<PsaNote>,
    /// Next numeric id.
    pub next_id: u64,
}

/// A PSA client / company.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PsaClient {
    /// Numeric id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// The sandbox tenant it is.
    pub tenant: String,
    /// Site id (Halo).
    pub site_id: u64,
}

/// A PSA contact.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PsaContact {
    /// Numeric id.
    pub id: u64,
    /// Client id.
    pub client_id: u64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Email.
    pub email: String,
    /// Phone.
    pub phone: String,
    /// Title.
    pub title: String,
    /// Active flag.
    pub active: bool,
}

/// A PSA ticket.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PsaTicket {
    /// Numeric id.
    pub id: u64,
    /// Client id.
    pub client_id: u64,
    /// Summary.
    pub summary: String,
    /// Status name.
    pub status: String,
}

/// A note on a ticket.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PsaNote {
    /// Numeric id.
    pub id: u64,
    /// Ticket id.
    pub ticket_id: u64,
    /// Text (HTML for Halo).
    pub text: String,
    /// Hidden from the end user.
    pub internal: bool,
}

/// A Password Pusher push.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Push {
    /// URL token.
    pub url_token: String,
    /// The secret (kept to serve the link; `/_sandbox/state` masks it).
    pub payload: String,
    /// Days until expiry.
    pub expire_after_days: u32,
    /// Views until expiry.
    pub expire_after_views: u32,
    /// Views so far.
    pub views: u32,
    /// Click-to-reveal page.
    pub retrieval_step: bool,
    /// Private note.
    pub note: Option<String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Expired by views, days or deletion.
    pub expired: bool,
}

/// Messages posted to Teams and emails sent.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Inbox {
    /// Teams webhook bodies, with the path they were posted to.
    pub teams: Vec<Value>,
    /// Emails.
    pub email: Vec<Value>,
}

/// A bought seat that becomes visible later.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PendingSeat {
    /// Tenant id.
    pub tenant: String,
    /// SKU part number.
    pub sku: String,
    /// Seats added (negative: removed).
    pub delta: i64,
    /// When it shows (unix ms).
    pub at_ms: u64,
}

/// How often one entity was created, changed and deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counter {
    /// Creations.
    pub created: u64,
    /// Changes.
    pub changed: u64,
    /// Deletions.
    pub deleted: u64,
}

impl World {
    /// Counts a creation of `entity`.
    pub fn created(&mut self, entity: impl Into<String>) {
        let entity = entity.into();
        self.touch(&entity);
        self.counters.entry(entity).or_default().created += 1;
    }

    /// Counts a change of `entity`.
    pub fn changed(&mut self, entity: impl Into<String>) {
        let entity = entity.into();
        self.touch(&entity);
        self.counters.entry(entity).or_default().changed += 1;
    }

    /// Counts a deletion of `entity`.
    pub fn deleted(&mut self, entity: impl Into<String>) {
        let entity = entity.into();
        self.touch(&entity);
        self.counters.entry(entity).or_default().deleted += 1;
    }

    /// The next directory change sequence number.
    pub fn next_seq(&mut self) -> u64 {
        self.change_seq += 1;
        self.change_seq
    }

    /// Every counted change to a user (`<tenant>/user/<upn>[/...]`) is a change for delta
    /// queries: the user (live or soft-deleted) takes the next sequence number.
    fn touch(&mut self, entity: &str) {
        let mut parts = entity.splitn(4, '/');
        let (Some(tenant), Some("user"), Some(upn)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let Some(t) = self.tenants.iter().position(|x| x.id == tenant) else {
            return;
        };
        let seq = self.change_seq + 1;
        let tn = &mut self.tenants[t];
        let user = tn
            .users
            .iter_mut()
            .chain(tn.deleted_users.iter_mut())
            .find(|u| u.user_principal_name.eq_ignore_ascii_case(upn));
        if let Some(u) = user {
            u.version = seq;
            self.change_seq = seq;
        }
    }

    /// A tenant by short id, GUID or verified domain.
    pub fn tenant(&self, key: &str) -> Option<usize> {
        let key = key.to_lowercase();
        self.tenants.iter().position(|t| {
            t.id == key || t.tenant_id == key || t.domains.iter().any(|d| d.to_lowercase() == key)
        })
    }
}

impl Tenant {
    /// The counter key of a user: `<tenant>/user/<upn in lowercase>`; sub-entities append to it.
    pub fn user_entity(&self, upn: &str) -> String {
        format!("{}/user/{}", self.id, upn.to_lowercase())
    }

    /// A user by object id or UPN (case-insensitive), as Graph sees it: a user still
    /// replicating (see [`Replication`]) is not found.
    pub fn user(&self, key: &str) -> Option<usize> {
        let now = crate::shared::now_ms();
        self.user_any(key)
            .filter(|&i| self.users[i].visible_at_ms <= now)
    }

    /// A user by object id or UPN whether or not it has replicated yet (uniqueness checks).
    pub fn user_any(&self, key: &str) -> Option<usize> {
        let key = key.trim_start_matches("('").trim_end_matches("')");
        let lower = key.to_lowercase();
        self.users
            .iter()
            .position(|u| u.id == key || u.user_principal_name.to_lowercase() == lower)
    }

    /// A user as Exchange Online sees it: not before its Exchange replication lag has passed.
    pub fn exchange_user(&self, key: &str) -> Option<usize> {
        let now = crate::shared::now_ms();
        self.user_any(key)
            .filter(|&i| self.users[i].exchange_visible_at_ms <= now)
    }

    /// Seats of a SKU in use: direct assignments plus group-inherited ones, each user once.
    pub fn consumed(&self, sku_id: &str) -> u32 {
        self.users
            .iter()
            .filter(|u| self.has_licence(u, sku_id))
            .count() as u32
    }

    /// Whether a user holds a SKU directly or through a group.
    pub fn has_licence(&self, user: &User, sku_id: &str) -> bool {
        user.assigned_licenses.iter().any(|s| s == sku_id)
            || !self.inherited(user, sku_id).is_empty()
    }

    /// The groups a user inherits `sku_id` from.
    pub fn inherited(&self, user: &User, sku_id: &str) -> Vec<String> {
        self.groups
            .iter()
            .filter(|g| {
                g.members.contains(&user.id) && g.assigned_licenses.iter().any(|s| s == sku_id)
            })
            .map(|g| g.id.clone())
            .collect()
    }

    /// Whether the user still holds any licence with an Exchange mailbox.
    pub fn has_exchange_licence(&self, user: &User) -> bool {
        self.skus
            .iter()
            .any(|s| s.includes_exchange && self.has_licence(user, &s.sku_id))
    }
}
