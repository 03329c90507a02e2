//! Rules that look at a whole item, one `check_*` each.

use super::ast::{AggKind, Aggregate, Record};
use super::ctxt::Ctxt;
use super::processor::{ProcessorFn, STORE_KINDS};
use super::symbol::MERGE;

pub(crate) fn record(cx: &Ctxt, r: &Record) {
    check_record_has_topic(cx, r);
    check_one_timestamp(cx, r);
}

pub(crate) fn aggregate(cx: &Ctxt, a: &Aggregate) {
    check_aggregate_has_input(cx, a);
    check_custom_has_merge(cx, a);
}

/// A record must name its topic: `#[record(topic = "...")]`.
fn check_record_has_topic(cx: &Ctxt, r: &Record) {
    if r.topic.is_none() {
        cx.error_spanned_by(
            &r.original.ident,
            "#[derive(Record)] needs the record's topic: add #[record(topic = \"...\")]",
        );
    }
}

/// A record has at most one event time.
fn check_one_timestamp(cx: &Ctxt, r: &Record) {
    let mut first: Option<&syn::Ident> = None;
    for f in r.fields.iter().filter(|f| f.timestamp.is_some()) {
        match first {
            None => first = Some(f.ident),
            Some(prev) => cx.push(syn::Error::new(
                f.timestamp.expect("filtered"),
                format!(
                    "a record has one event time: `{prev}` is #[timestamp] already; remove #[timestamp] from `{}`",
                    f.ident
                ),
            )),
        }
    }
}

/// An aggregate must name what it aggregates: `#[aggregate(input = Type)]`.
fn check_aggregate_has_input(cx: &Ctxt, a: &Aggregate) {
    if a.input.is_none() {
        cx.error_spanned_by(
            &a.original.ident,
            "#[derive(Aggregate)] needs the input type: add #[aggregate(input = Type)]",
        );
    }
}

/// A custom aggregate also needs a merge function (sessions and window panes merge aggregates).
fn check_custom_has_merge(cx: &Ctxt, a: &Aggregate) {
    for f in &a.fields {
        if let Some(AggKind::Custom { add, merge: None }) = &f.kind {
            cx.error_spanned_by(
                add,
                format!("custom aggregate `{}` also needs `{MERGE} = path` (fn(&mut T, T)) to combine sessions and window panes", f.ident),
            );
        }
    }
}

pub(crate) fn processor(cx: &Ctxt, p: &ProcessorFn) {
    check_store_kinds(cx, p);
    check_unique_store_names(cx, p);
}

/// Stores are `key_value`, `window` or `session`; window and session stores need a retention.
fn check_store_kinds(cx: &Ctxt, p: &ProcessorFn) {
    for s in &p.stores {
        let kind = s.kind.to_string();
        if !STORE_KINDS.contains(&kind.as_str()) {
            let list: Vec<String> = STORE_KINDS.iter().map(|k| format!("`{k}`")).collect();
            cx.error_spanned_by(&s.kind, format!("unknown store kind `{kind}`; expected one of: {}", list.join(", ")));
        } else if kind != "key_value" && s.retention.is_none() {
            cx.error_spanned_by(
                &s.kind,
                format!("a {kind} store needs a retention: `{}: {kind}<K, V>(retention_ms = ...)`", s.name),
            );
        }
    }
}

/// Each store of a processor has its own name.
fn check_unique_store_names(cx: &Ctxt, p: &ProcessorFn) {
    for (i, s) in p.stores.iter().enumerate() {
        if p.stores[..i].iter().any(|t| t.name == s.name) {
            cx.error_spanned_by(&s.name, format!("duplicate store `{}`", s.name));
        }
    }
}
