//! How the run report words each kind's result: one row per kind, written as runbook templates
//! over `with` (the step's parameters as rendered, secrets `***`), `out` (its outputs, secrets
//! `***`), and friendly names: `user` (a user id shown as its user principal name), `sku` (a
//! licence's product name), `source` (where seats are bought) and `list.<output>` (a list
//! output joined with commas). A kind without a row is reported as "Done (kind)."

/// One kind's wording.
pub(super) struct Row {
    /// The kind.
    pub kind: &'static str,
    /// What a finished instance did.
    pub done: &'static str,
    /// A warning, when this renders to anything but blanks.
    pub warn: Option<&'static str>,
}

const fn row(kind: &'static str, done: &'static str) -> Row {
    Row {
        kind,
        done,
        warn: None,
    }
}

const fn warn(kind: &'static str, done: &'static str, warn: &'static str) -> Row {
    Row {
        kind,
        done,
        warn: Some(warn),
    }
}

/// The wording of every kind.
pub(super) const TABLE: &[Row] = &[
    row("wait", "{{#if with.until}}Waited until {{with.until}}{{else}}Waited for {{with.for}}{{/if}}"),
    row("http.request", "{{with.method}} {{with.url}} answered {{out.status}}"),
    row("runbook.call", "Ran runbook {{with.runbook}} (run {{out.run_id}}): {{out.status}}"),
    // Entra ID users.
    row("entra.create_user", "{{#if out.created}}Created user {{out.user_principal_name}}{{else}}User {{out.user_principal_name}} already existed from an earlier attempt of this run and was adopted{{/if}}{{#if with.display_name}} ({{with.display_name}}){{/if}} with a new initial password ***{{#if with.manager}}; manager {{with.manager}}{{/if}}"),
    row("entra.update_user", "{{#if out.changed}}Updated {{user}}: {{list.changed}}{{else}}{{user}} already had these details; nothing changed{{/if}}"),
    row("entra.disable_sign_in", "{{#if out.changed}}Blocked sign-in for {{user}}{{else}}Sign-in for {{user}} was already blocked{{/if}}"),
    row("entra.enable_sign_in", "{{#if out.changed}}Allowed sign-in for {{user}}{{else}}Sign-in for {{user}} was already allowed{{/if}}"),
    row("entra.revoke_sessions", "Signed {{user}} out of every session (refresh tokens revoked)"),
    row("entra.reset_password", "Reset the password of {{user}} (new password ***)"),
    row("entra.restore_user", "{{#if out.restored}}Restored {{out.user_principal_name}} from the deleted users{{else}}Found the existing account {{out.user_principal_name}}{{#unless out.was_enabled}} (sign-in blocked until enabled){{/unless}}: no second account{{/if}}"),
    row("entra.delete_user", "{{#if out.deleted}}Deleted user {{user}} (restorable for 30 days){{else}}User {{user}} was already deleted{{/if}}"),
    row("entra.set_manager", "{{#if out.changed}}Set the manager of {{user}} to {{with.manager}}{{else}}The manager of {{user}} already was {{with.manager}}{{/if}}"),
    row("entra.remove_auth_methods", "{{#if out.removed}}Removed the sign-in methods of {{user}}: {{list.removed}}{{else}}{{user}} had no sign-in methods to remove{{/if}}"),
    row("entra.create_tap", "Created a Temporary Access Pass (***) for {{user}}, valid until {{out.expires_at}}"),
    // Groups.
    row("entra.add_to_group", "{{#if out.added}}Added {{user}} to the group {{with.group}}{{else}}{{user}} already was in the group {{with.group}}{{/if}}"),
    row("entra.remove_from_group", "{{#if out.removed}}Removed {{user}} from the group {{with.group}}{{else}}{{user}} was not in the group {{with.group}}{{/if}}"),
    warn("entra.remove_from_all_groups", "{{#if out.removed}}Removed {{user}} from the groups {{list.removed}}{{else}}{{user}} was in no group this could remove{{/if}}",
        "{{#if out.skipped}}{{user}} is still in {{list.skipped}}: dynamic or synced groups cannot be changed here (change the rule, or the on-premises group){{/if}}"),
    row("entra.copy_groups_from", "{{#if out.added}}Added {{user}} to the groups of {{with.from}}: {{list.added}}{{else}}{{user}} already was in every group of {{with.from}}{{/if}}"),
    // Licences.
    row("licence.assign", "{{#if out.assigned}}Assigned {{sku}} to {{user}}{{else}}{{user}} already had {{sku}}{{/if}}{{#if out.purchased}} (bought 1 seat via {{source}}){{/if}}"),
    row("licence.remove", "{{#if out.removed}}Removed {{sku}} from {{user}}{{else}}{{user}} did not have {{sku}}{{/if}}{{#if out.seat}} ({{out.seat}}){{/if}}"),
    warn("licence.remove_all", "{{#if out.removed}}Removed the licences of {{user}}: {{list.removed}}{{else}}{{user}} had no licence to remove{{/if}}",
        "{{#if out.inherited}}{{user}} keeps {{list.inherited}}: assigned through a group, so it stays until the user leaves that group{{/if}}"),
    // Exchange Online.
    row("exchange.convert_to_regular", "{{#if out.converted}}Converted the mailbox {{out.mailbox}} back to a user mailbox{{else}}The mailbox {{out.mailbox}} already was a user mailbox{{/if}}"),
    row("exchange.convert_to_shared", "{{#if out.converted}}Converted the mailbox {{out.mailbox}} to a shared mailbox{{else}}The mailbox {{out.mailbox}} already was a shared mailbox{{/if}}"),
    row("exchange.hide_from_gal", "{{#if out.changed}}{{#if out.hidden}}Hid {{out.mailbox}} from the address book{{else}}Showed {{out.mailbox}} in the address book again{{/if}}{{else}}{{out.mailbox}} already was {{#if out.hidden}}hidden from{{else}}shown in{{/if}} the address book{{/if}}"),
    row("exchange.set_forwarding", "{{#if out.changed}}Forwarded mail for {{out.mailbox}} to {{out.forward_to}}{{else}}Mail for {{out.mailbox}} already went to {{out.forward_to}}{{/if}}{{#if with.keep_copy}}, keeping a copy{{/if}}"),
    row("exchange.grant_full_access", "{{#if out.granted}}Gave {{out.trustee}} full access to {{out.mailbox}}{{else}}{{out.trustee}} already had full access to {{out.mailbox}}{{/if}}"),
    row("exchange.set_auto_reply", "{{#if out.changed}}Set the automatic reply of {{out.mailbox}}{{else}}The automatic reply of {{out.mailbox}} already was as asked{{/if}}"),
    // Intune.
    row("intune.wipe_devices", "{{#if out.wiped}}Sent a wipe to {{out.wiped}} device(s) of {{user}}{{else}}{{user}} had no device to wipe{{/if}}"),
    row("intune.retire_devices", "{{#if out.retired}}Retired {{out.retired}} device(s) of {{user}}{{else}}{{user}} had no device to retire{{/if}}"),
    // The PSA.
    row("psa.create_contact", "{{#if out.created}}Created the PSA contact {{with.first_name}} {{with.last_name}} ({{with.email}}), id {{out.contact_id}}{{else}}The PSA contact {{with.email}} already existed (id {{out.contact_id}}) and was kept{{/if}}"),
    row("psa.update_contact", "{{#if out.changed}}Updated the PSA contact {{out.contact_id}}: {{list.changed}}{{else}}The PSA contact {{out.contact_id}} already had these details{{/if}}"),
    row("psa.deactivate_contact", "{{#if out.changed}}Deactivated the PSA contact {{with.contact}}{{else}}The PSA contact {{with.contact}} already was inactive{{/if}}"),
    row("psa.add_ticket_note", "{{#if out.added}}Added a{{#if with.internal}}n internal{{/if}} note to ticket {{with.ticket}}{{else}}The note on ticket {{with.ticket}} was already there{{/if}}"),
    row("psa.update_ticket", "{{#if out.changed}}Updated ticket {{with.ticket}}: {{list.changed}}{{#if with.status}} (status {{with.status}}){{/if}}{{else}}Ticket {{with.ticket}} already was as asked{{/if}}"),
    // Passwords and messages.
    row("password.generate", "Generated a password (***)"),
    row("password.share", "{{#if (eq out.method 'secure_link')}}Made a one-time password link (***){{#if with.recipient}} for {{with.recipient}}{{/if}}, expiring after {{with.expire_after_views}} view(s) or {{with.expire_after_days}} day(s){{else}}{{#if (eq out.method 'direct')}}Passed the secret (***) to the message that delivers it{{#if with.recipient}} to {{with.recipient}}{{/if}}{{else}}Kept the secret (***) unshared, as asked{{/if}}{{/if}}"),
    row("notify.teams", "Posted to Teams{{#if with.channel}} ({{with.channel}}){{/if}}{{#if with.title}}: \u{201c}{{with.title}}\u{201d}{{/if}}"),
    row("notify.email", "Emailed {{#if with.to}}{{with.to}}{{/if}}: \u{201c}{{with.subject}}\u{201d}"),
];

/// A licence's product name for a SKU part number (the part number itself when unknown).
pub(super) fn sku_name(sku: &str) -> String {
    let name = match sku {
        "SPB" => "Microsoft 365 Business Premium",
        "O365_BUSINESS_PREMIUM" => "Microsoft 365 Business Standard",
        "O365_BUSINESS_ESSENTIALS" => "Microsoft 365 Business Basic",
        "O365_BUSINESS" => "Microsoft 365 Apps for business",
        "OFFICESUBSCRIPTION" => "Microsoft 365 Apps for enterprise",
        "SPE_E3" => "Microsoft 365 E3",
        "SPE_E5" => "Microsoft 365 E5",
        "SPE_F1" => "Microsoft 365 F3",
        "STANDARDPACK" => "Office 365 E1",
        "ENTERPRISEPACK" => "Office 365 E3",
        "ENTERPRISEPREMIUM" => "Office 365 E5",
        "EXCHANGESTANDARD" => "Exchange Online (Plan 1)",
        "EXCHANGEENTERPRISE" => "Exchange Online (Plan 2)",
        "AAD_PREMIUM" => "Microsoft Entra ID P1",
        "AAD_PREMIUM_P2" => "Microsoft Entra ID P2",
        "EMS" => "Enterprise Mobility + Security E3",
        "INTUNE_A" => "Microsoft Intune Plan 1",
        "POWER_BI_PRO" => "Power BI Pro",
        "VISIOCLIENT" => "Visio Plan 2",
        "PROJECTPROFESSIONAL" => "Project Plan 3",
        _ => return sku.to_string(),
    };
    format!("{name} ({sku})")
}

/// Where a seat is bought, as a person says it.
pub(super) fn source_name(source: &str) -> String {
    match source {
        "pax8" => "Pax8".into(),
        "partner_center" => "Partner Center".into(),
        "direct" => "the tenant's own subscription".into(),
        other => other.to_string(),
    }
}
