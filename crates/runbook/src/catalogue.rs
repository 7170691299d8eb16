//! What the compiler knows about step kinds: each kind's `with` parameters and outputs, and
//! whether it can run yet.
//! The compiler takes a [`Catalogue`] from outside so this crate never depends on the crate
//! that implements the kinds.

use serde::Serialize;

/// The type of one `with` parameter or output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum FieldType {
    /// Any text (numbers and booleans written in YAML are accepted as their text).
    String,
    /// A whole number.
    Int,
    /// `true` / `false`.
    Bool,
    /// A duration such as `30s`, `10m`, `48h`, `7d`.
    Duration,
    /// An RFC 3339 datetime.
    Datetime,
    /// An email address.
    Email,
    /// A secret: a template that resolves to one, never a literal in the file.
    Secret,
    /// One of a fixed set of strings.
    Enum {
        /// The allowed values.
        values: Vec<String>,
    },
    /// A list of the inner type.
    List {
        /// The type of every item.
        items: Box<FieldType>,
    },
    /// A mapping of string keys to any values.
    Object,
    /// Anything.
    Any,
}

impl FieldType {
    /// `FieldType::Enum` from string slices.
    pub fn one_of(values: &[&str]) -> Self {
        FieldType::Enum {
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    /// `FieldType::List` of `items`.
    pub fn list(items: FieldType) -> Self {
        FieldType::List {
            items: Box::new(items),
        }
    }

    /// A short human name for messages.
    pub fn describe(&self) -> String {
        match self {
            FieldType::String => "a string".into(),
            FieldType::Int => "an integer".into(),
            FieldType::Bool => "a boolean".into(),
            FieldType::Duration => "a duration such as `30s` or `48h`".into(),
            FieldType::Datetime => "an RFC 3339 datetime".into(),
            FieldType::Email => "an email address".into(),
            FieldType::Secret => "a template naming a secret".into(),
            FieldType::Enum { values } => format!("one of {}", quoted_list(values)),
            FieldType::List { items } => format!("a list, each item {}", items.describe()),
            FieldType::Object => "a mapping".into(),
            FieldType::Any => "any value".into(),
        }
    }
}

/// Formats `["a", "b"]` as `` `a`, `b` ``.
pub fn quoted_list<S: AsRef<str>>(values: &[S]) -> String {
    values
        .iter()
        .map(|v| format!("`{}`", v.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One named parameter or output of a step kind.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Field {
    /// The key in `with` (or in `outputs`).
    pub name: String,
    /// Its type.
    #[serde(flatten)]
    pub ty: FieldType,
    /// Whether `with` must give it.
    pub required: bool,
    /// The value used when it is not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// What it means, for docs and editor hovers.
    pub description: String,
    /// What the field means to the lints, if anything ([`Role`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// What a parameter or output means beyond its type, for the compiler's lints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The parameter names the person the step acts on (`user`), or the output names the
    /// person it acted on (`id`): the run's subject.
    Subject,
    /// The parameter's text is stored or broadcast where others can read it (a ticket note,
    /// a PSA field, a Teams or email message, a request body): no secret belongs in it.
    Publishes,
    /// The parameter's text is posted where many people read it at once (a Teams channel):
    /// no secret belongs in it, and neither does a one-time link, which the first reader
    /// would use up.
    Broadcasts,
    /// The secret output is made to be sent (a one-time link, a secret for the message that
    /// delivers it): it does not count as a leaked secret when published.
    Delivers,
}

impl Field {
    /// A required field.
    pub fn required(name: &str, ty: FieldType, description: &str) -> Self {
        Field {
            name: name.into(),
            ty,
            required: true,
            default: None,
            description: description.into(),
            role: None,
        }
    }

    /// An optional field.
    pub fn optional(name: &str, ty: FieldType, description: &str) -> Self {
        Field {
            required: false,
            ..Field::required(name, ty, description)
        }
    }

    /// Sets what the field means to the lints.
    pub fn role(mut self, role: Role) -> Self {
        self.role = Some(role);
        self
    }

    /// Sets the default value (and makes the field optional).
    pub fn default(mut self, value: serde_json::Value) -> Self {
        self.default = Some(value);
        self.required = false;
        self
    }
}

/// How the engine treats a kind: most kinds call a vendor; `approval` and `wait` park the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KindClass {
    /// Performs work (usually an HTTP call) and finishes.
    Action,
    /// Pauses the run until approvers decide (uses `expires`, not `timeout`).
    Approval,
    /// Pauses the run until a time (uses `until` / `for`, not `timeout`).
    Wait,
}

/// What running a kind does to a tenant, beyond its parameters, for the compiler's lints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Destroys or locks out something a person cannot easily undo (deleting a user, wiping a
    /// device, removing every licence, resetting a password): a person should approve it.
    Destructive,
    /// Secures an account against its former owner (blocks sign-in, revokes sessions, removes
    /// MFA methods, resets the password): failing it must fail the run.
    SecuresAccount,
    /// Creates an account: two runs for one person at once would race.
    CreatesAccount,
    /// Removes licences; removing the last Exchange licence from a user mailbox starts its
    /// deletion (30 days later the mail is gone).
    ReleasesMailbox,
    /// Keeps a mailbox without a licence (converts it to a shared mailbox).
    PreservesMailbox,
}

/// The declared interface of one step kind.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KindSchema {
    /// The stable name used in `uses:`, e.g. `entra.create_user`. Never renamed.
    pub kind: String,
    /// One line on what it does.
    pub description: String,
    /// How the engine schedules it.
    pub class: KindClass,
    /// Parameters taken in `with`.
    pub params: Vec<Field>,
    /// Outputs later steps may read as `steps.<id>.outputs.<name>`.
    pub outputs: Vec<Field>,
    /// Why the kind cannot run yet (no executor ships), or `None` when it can. The compiler
    /// rejects a runbook that uses an unavailable kind (RB0045), so it fails before any run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// What running it does, for the lints ([`Effect`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<Effect>,
}

impl KindSchema {
    /// A kind of class [`KindClass::Action`] with no fields yet.
    pub fn action(kind: &str, description: &str) -> Self {
        KindSchema {
            kind: kind.into(),
            description: description.into(),
            class: KindClass::Action,
            params: Vec::new(),
            outputs: Vec::new(),
            unavailable: None,
            effects: Vec::new(),
        }
    }

    /// Marks the kind unavailable: declared, but nothing can run it yet, for `reason`.
    pub fn unavailable(mut self, reason: &str) -> Self {
        self.unavailable = Some(reason.into());
        self
    }

    /// Adds an effect.
    pub fn effect(mut self, effect: Effect) -> Self {
        self.effects.push(effect);
        self
    }

    /// Whether running the kind has `effect`.
    pub fn has(&self, effect: Effect) -> bool {
        self.effects.contains(&effect)
    }

    /// Sets the role of the output called `name` (the last one added, usually).
    pub fn output_role(mut self, name: &str, role: Role) -> Self {
        if let Some(o) = self.outputs.iter_mut().find(|o| o.name == name) {
            o.role = Some(role);
        }
        self
    }

    /// Sets the class.
    pub fn class(mut self, class: KindClass) -> Self {
        self.class = class;
        self
    }

    /// Adds a `with` parameter.
    pub fn param(mut self, field: Field) -> Self {
        self.params.push(field);
        self
    }

    /// Adds an output.
    pub fn output(mut self, name: &str, ty: FieldType, description: &str) -> Self {
        self.outputs.push(Field::optional(name, ty, description));
        self
    }

    /// Looks a parameter up by name.
    pub fn find_param(&self, name: &str) -> Option<&Field> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// The set of step kinds the compiler accepts.
pub trait Catalogue {
    /// The schema of `kind`, if it exists.
    fn get(&self, kind: &str) -> Option<&KindSchema>;
    /// Every kind, sorted by name.
    fn kinds(&self) -> Vec<&KindSchema>;
}

/// A catalogue held in a vector; the usual implementation.
#[derive(Clone, Debug, Default)]
pub struct SchemaCatalogue {
    kinds: std::collections::BTreeMap<String, KindSchema>,
}

impl SchemaCatalogue {
    /// An empty catalogue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a kind.
    pub fn insert(&mut self, schema: KindSchema) {
        self.kinds.insert(schema.kind.clone(), schema);
    }
}

impl FromIterator<KindSchema> for SchemaCatalogue {
    fn from_iter<T: IntoIterator<Item = KindSchema>>(iter: T) -> Self {
        let mut c = SchemaCatalogue::new();
        for k in iter {
            c.insert(k);
        }
        c
    }
}

impl Catalogue for SchemaCatalogue {
    fn get(&self, kind: &str) -> Option<&KindSchema> {
        self.kinds.get(kind)
    }

    fn kinds(&self) -> Vec<&KindSchema> {
        self.kinds.values().collect()
    }
}
