//! Author-facing diagnostics: a stable code, a message, the span it is about, and a renderer
//! that prints `file:line:col: error[CODE]: message` followed by a source snippet.

use std::fmt::Write as _;

use crate::source::{SourceFile, Span};

/// How bad a diagnostic is: errors stop a runbook from compiling, warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The runbook cannot be compiled.
    Error,
    /// The runbook compiles, but probably does not do what the author meant.
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

macro_rules! codes {
    ($($variant:ident = $code:literal : $title:literal,)*) => {
        /// Stable diagnostic codes. A code is never reused for another meaning; each has a page
        /// under `docs/diagnostics/`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $(#[doc = $title] $variant,)*
        }

        impl Code {
            /// Every code, in numeric order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as printed, e.g. `RB0001`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// A one-line title for the code's documentation page.
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title,)* }
            }
        }
    };
}

codes! {
    YamlSyntax = "RB0001": "the file is not valid YAML",
    DuplicateKey = "RB0002": "a mapping names the same key twice",
    UnknownKey = "RB0003": "a key the runbook language does not define",
    WrongType = "RB0004": "a value of the wrong shape or type",
    MissingKey = "RB0005": "a required key is missing",
    InvalidId = "RB0006": "an invalid runbook or step id",
    InvalidVersion = "RB0007": "the version is not a positive integer",
    UnknownInputType = "RB0010": "an input declares an unknown type",
    InvalidDefault = "RB0011": "an input's default or enum does not fit its type",
    InvalidPattern = "RB0012": "an input's pattern is not a valid regular expression",
    TemplateSyntax = "RB0020": "a template is not valid Handlebars",
    UnknownInput = "RB0021": "a template names an input that is not declared",
    UnknownVar = "RB0022": "a template names a var that is not declared before it",
    UnknownStepRef = "RB0023": "a template references a step that does not exist",
    UnknownHelper = "RB0024": "a template calls a helper that does not exist",
    UnknownVariable = "RB0025": "a template names a variable that is not in its context",
    UnknownOutput = "RB0026": "a template reads an output the step kind does not produce",
    UnknownNeed = "RB0030": "`needs` names a step that does not exist",
    Cycle = "RB0031": "steps depend on each other in a cycle",
    UnknownKind = "RB0040": "`uses` names a step kind that does not exist",
    MissingParam = "RB0041": "a required `with` parameter is missing",
    UnknownParam = "RB0042": "`with` has a parameter the step kind does not take",
    ParamType = "RB0043": "a `with` parameter has the wrong type",
    ParamEnum = "RB0044": "a `with` parameter is not one of the allowed values",
    UnavailableKind = "RB0045": "`uses` names a step kind that cannot run yet",
    UnknownRunbook = "RB0046": "`runbook.call` names a runbook that cannot be found or compiled",
    CallCycle = "RB0047": "runbooks call each other in a cycle",
    CallInputs = "RB0048": "`runbook.call` inputs do not fit the called runbook",
    InvalidDuration = "RB0050": "a duration is not valid",
    InvalidCron = "RB0051": "a schedule is not a valid cron expression",
    InvalidTimezone = "RB0052": "a timezone is not a known IANA zone",
    InvalidTrigger = "RB0053": "a trigger is neither a webhook nor a schedule",
    InvalidRetry = "RB0054": "a retry policy is not valid",
    InvalidParallelism = "RB0055": "`max_parallel` is not valid here",
    UnmappedInput = "RB0056": "a trigger leaves a required input without a value",
    MisplacedTimeout = "RB0057": "`timeout` on a step kind that uses `expires` or `until`",
    InvalidMissed = "RB0058": "a schedule's `missed` is neither `run_once` nor `skip`",
    InvalidApproval = "RB0060": "an approval gate can never be satisfied",
    NoSteps = "RB0061": "the runbook has no steps",
    InvalidWait = "RB0062": "a wait step needs exactly one of `until` and `for`",
    MailboxLoss = "RB0070": "licences may be removed before the mailbox is converted to shared",
    UnapprovedDestructive = "RB0071": "a destructive step does not wait for an approval",
    SecretPublished = "RB0072": "a secret flows into a field that stores or broadcasts it",
    ContinueSecuring = "RB0073": "`continue_on_error` on a step that secures an account",
    Unused = "RB0074": "an input or var is declared but never used",
    WaitWithoutZone = "RB0075": "a wait until a date or datetime with no timezone",
    FailureReadsOutput = "RB0076": "`on_failure` reads an output of a step that may not have run",
    NoConcurrency = "RB0077": "a runbook that creates accounts has no `concurrency` key",
    SelfApproval = "RB0078": "an approver list can contain the run's own subject",
    InvalidAllow = "RB0079": "an `allow` entry is not valid",
}

impl Code {
    /// The codes of the domain lints: warnings a runbook may accept on purpose with an
    /// `allow` entry that gives the reason.
    pub const LINTS: &'static [Code] = &[
        Code::MailboxLoss,
        Code::UnapprovedDestructive,
        Code::SecretPublished,
        Code::ContinueSecuring,
        Code::Unused,
        Code::WaitWithoutZone,
        Code::FailureReadsOutput,
        Code::NoConcurrency,
        Code::SelfApproval,
    ];

    /// Whether this is a domain lint (see [`Code::LINTS`]).
    pub fn is_lint(self) -> bool {
        Code::LINTS.contains(&self)
    }

    /// The code printed as `RB0071`, parsed back.
    pub fn parse(text: &str) -> Option<Code> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == text.trim())
    }
}

/// A secondary note pointing at another place, e.g. "first defined here".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Where the note points.
    pub span: Span,
    /// What it says.
    pub message: String,
}

/// One problem found in a runbook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The stable code.
    pub code: Code,
    /// Error or warning.
    pub severity: Severity,
    /// The headline, lowercase, without a trailing period.
    pub message: String,
    /// The offending text.
    pub span: Span,
    /// A short label printed under the caret.
    pub label: Option<String>,
    /// Other places that explain this one.
    pub notes: Vec<Note>,
    /// What to do about it ("did you mean ...?").
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error with `code` and `message` at `span`.
    pub fn error(code: Code, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            span,
            label: None,
            notes: Vec::new(),
            help: None,
        }
    }

    /// A warning with `code` and `message` at `span`.
    pub fn warning(code: Code, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    /// Sets the label under the caret.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Sets the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the help line if `help` is `Some`.
    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// Adds a note pointing at another span.
    pub fn with_note(mut self, span: Span, message: impl Into<String>) -> Self {
        self.notes.push(Note {
            span,
            message: message.into(),
        });
        self
    }

    /// Whether this diagnostic stops compilation.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic against its source: a `file:line:col: error[CODE]: message`
    /// headline, the source line with a caret under the span, notes and help.
    pub fn render(&self, source: &SourceFile) -> String {
        let mut out = String::new();
        let loc = source.location(self.span.start);
        let _ = writeln!(
            out,
            "{}:{}:{}: {}[{}]: {}",
            source.name(),
            loc.line,
            loc.col,
            self.severity.as_str(),
            self.code.as_str(),
            self.message
        );
        render_snippet(&mut out, source, self.span, self.label.as_deref());
        for note in &self.notes {
            let nloc = source.location(note.span.start);
            let _ = writeln!(
                out,
                "  note: {} ({}:{}:{})",
                note.message,
                source.name(),
                nloc.line,
                nloc.col
            );
            render_snippet(&mut out, source, note.span, None);
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "  help: {help}");
        }
        out
    }
}

/// The most characters of a source line a snippet shows.
const SNIPPET_WIDTH: usize = 200;
/// How many characters before the caret a clipped snippet keeps.
const SNIPPET_CONTEXT: usize = 60;

/// A character as a snippet shows it: control characters (other than tab) as their Unicode
/// control pictures (NUL is `␀`), so a binary file cannot garble the terminal.
fn visible(c: char) -> char {
    match c {
        '\t' => c,
        '\0'..='\u{1f}' => char::from_u32(0x2400 + c as u32).unwrap_or('?'),
        '\u{7f}' => '␡',
        _ => c,
    }
}

fn render_snippet(out: &mut String, source: &SourceFile, span: Span, label: Option<&str>) {
    if source.text().is_empty() {
        return;
    }
    let loc = source.location(span.start);
    let line = source.line_text(loc.line);
    let width = loc.line.to_string().len();
    let line_start = source.offset(loc.line, 0);
    let line_end = line_start + line.len();
    let end = span.end.clamp(span.start, line_end);
    let caret_len = source
        .slice(Span::new(span.start, end))
        .chars()
        .count()
        .max(1);
    // A long line (a minified or hostile file: one line of megabytes) is shown as a window
    // around the caret; control characters (a NUL) as their visible symbols.
    let chars: Vec<char> = line.chars().collect();
    let col = (loc.col - 1).min(chars.len());
    let first = if chars.len() <= SNIPPET_WIDTH {
        0
    } else {
        col.saturating_sub(SNIPPET_CONTEXT)
    };
    let last = (first + SNIPPET_WIDTH).min(chars.len());
    let caret_len = caret_len.min(last.saturating_sub(col)).max(1);
    let shown: String = chars[first..last].iter().map(|&c| visible(c)).collect();
    let (before, after) = (
        if first > 0 { "…" } else { "" },
        if last < chars.len() { "…" } else { "" },
    );
    let pad: String = chars[first..col]
        .iter()
        .map(|&c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let pad = format!("{}{pad}", if first > 0 { " " } else { "" });
    let _ = writeln!(out, "{:width$} |", "");
    let _ = writeln!(out, "{} | {before}{shown}{after}", loc.line);
    let _ = write!(out, "{:width$} | {}{}", "", pad, "^".repeat(caret_len));
    match label {
        Some(label) => {
            let _ = writeln!(out, " {label}");
        }
        None => out.push('\n'),
    }
}

/// Suggests the candidate closest to `word`, if one is close enough to be a likely typo: an
/// edit distance (with transpositions) of at most a third of the length, or one word being a
/// prefix of the other.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let w = word.to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let c = candidate.to_lowercase();
        if c == w {
            continue;
        }
        let distance = strsim::damerau_levenshtein(&w, &c);
        let allowed = (w.chars().count().max(c.chars().count()) / 3).max(1);
        let prefix = w.len() >= 3 && c.len() >= 3 && (c.starts_with(&w) || w.starts_with(&c));
        let long_enough = w.chars().count().max(c.chars().count()) >= 3;
        if long_enough && (distance <= allowed || prefix) && best.is_none_or(|(d, _)| distance < d)
        {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_headline_snippet_and_help() {
        let src = SourceFile::new("r.yaml", "steps:\n  a:\n    needs: [crate_user]\n");
        let start = src.text().find("crate_user").unwrap();
        let d = Diagnostic::error(Code::UnknownNeed, Span::at(start, 10), "unknown step")
            .with_label("not a step")
            .with_help("did you mean `create_user`?");
        let text = d.render(&src);
        assert_eq!(
            text,
            "r.yaml:3:13: error[RB0030]: unknown step\n  |\n3 |     needs: [crate_user]\n  |             ^^^^^^^^^^ not a step\n  help: did you mean `create_user`?\n"
        );
    }

    #[test]
    fn a_long_line_is_shown_around_the_caret_and_control_characters_visibly() {
        let text = format!("a: [{}, \0]\n", "x".repeat(1_000_000));
        let src = SourceFile::new("big.yaml", text.as_str());
        let at = text.find('\0').unwrap();
        let d = Diagnostic::error(Code::YamlSyntax, Span::at(at, 1), "a NUL").with_label("here");
        let rendered = d.render(&src);
        assert!(rendered.len() < 1_000, "{} bytes", rendered.len());
        let lines: Vec<&str> = rendered.lines().collect();
        assert_eq!(lines[2], format!("1 | …{}, ␀]", "x".repeat(58)));
        assert_eq!(lines[3], format!("  | {}^ here", " ".repeat(61)));
        let short = Diagnostic::error(Code::YamlSyntax, Span::at(0, 1), "x").render(&src);
        assert!(short.lines().nth(2).unwrap().ends_with("xxx…"), "{short}");
    }

    #[test]
    fn codes_are_unique_and_ordered() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.as_str()), "{} twice", code.as_str());
        }
        let strs: Vec<_> = Code::ALL.iter().map(|c| c.as_str()).collect();
        let mut sorted = strs.clone();
        sorted.sort();
        assert_eq!(strs, sorted);
    }

    #[test]
    fn suggests_near_misses_only() {
        assert_eq!(
            did_you_mean("crate_user", ["create_user", "licences"]),
            Some("did you mean `create_user`?".into())
        );
        assert_eq!(did_you_mean("zzz", ["create_user"]), None);
        assert_eq!(
            did_you_mean("upm", ["upn"]),
            Some("did you mean `upn`?".into())
        );
        assert_eq!(
            did_you_mean("lowercase", ["lower", "upper"]),
            Some("did you mean `lower`?".into())
        );
        assert_eq!(
            did_you_mean("exchange.delete_mailbox", ["exchange.hide_from_gal"]),
            None
        );
    }
}
