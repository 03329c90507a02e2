//! Parses `#[record(...)]`, `#[key]`, `#[timestamp]` and `#[aggregate(...)]` into typed values,
//! recording every error and going on.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Attribute, DeriveInput, Field, Ident, LitStr, Path, Type};

use super::ast::AggKind;
use super::ctxt::Ctxt;
use super::symbol::*;

fn expected(list: &[&str]) -> String {
    list.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
}

/// `#[record(topic = "...", format = "json")]`.
pub(crate) struct RecordContainer {
    pub(crate) topic: Option<LitStr>,
}

impl RecordContainer {
    pub(crate) fn from_ast(cx: &Ctxt, input: &DeriveInput) -> RecordContainer {
        let mut topic: Option<LitStr> = None;
        for attr in input.attrs.iter().filter(|a| a.path().is_ident(RECORD)) {
            let r = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident(TOPIC) {
                    let lit: LitStr = meta.value()?.parse()?;
                    if topic.is_some() {
                        cx.error_spanned_by(&meta.path, "duplicate record attribute `topic`");
                    } else if lit.value().is_empty() {
                        cx.error_spanned_by(&lit, "the topic name is empty");
                    } else {
                        topic = Some(lit);
                    }
                } else if meta.path.is_ident(FORMAT) {
                    let lit: LitStr = meta.value()?.parse()?;
                    if lit.value() != "json" {
                        cx.error_spanned_by(&lit, format!("unknown record format `{}`; expected `json`", lit.value()));
                    }
                } else {
                    let name = meta.path.get_ident().map_or_else(|| "?".to_string(), Ident::to_string);
                    cx.error_spanned_by(
                        &meta.path,
                        format!("unknown record attribute `{name}`; expected one of: {}", expected(&[TOPIC, FORMAT])),
                    );
                    if meta.input.peek(syn::Token![=]) {
                        let _: syn::Expr = meta.value()?.parse()?;
                    }
                }
                Ok(())
            });
            if let Err(e) = r {
                cx.push(e);
            }
        }
        RecordContainer { topic }
    }
}

/// `#[key]` and `#[timestamp]` on a field.
pub(crate) struct RecordField {
    pub(crate) key: bool,
    pub(crate) timestamp: Option<Span>,
}

fn marker(cx: &Ctxt, attr: &Attribute, name: &str) {
    if !matches!(attr.meta, syn::Meta::Path(_)) {
        cx.error_spanned_by(attr, format!("#[{name}] takes no arguments"));
    }
}

impl RecordField {
    pub(crate) fn from_ast(cx: &Ctxt, field: &Field) -> RecordField {
        let mut out = RecordField { key: false, timestamp: None };
        for attr in &field.attrs {
            if attr.path().is_ident(KEY) {
                marker(cx, attr, KEY);
                if out.key {
                    cx.error_spanned_by(attr, "duplicate #[key] on one field");
                }
                out.key = true;
            } else if attr.path().is_ident(TIMESTAMP) {
                marker(cx, attr, TIMESTAMP);
                out.timestamp = Some(attr.span());
            }
        }
        out
    }
}

/// `#[aggregate(input = Type)]` on the struct.
pub(crate) struct AggregateContainer {
    pub(crate) input: Option<Type>,
}

impl AggregateContainer {
    pub(crate) fn from_ast(cx: &Ctxt, input: &DeriveInput) -> AggregateContainer {
        let mut ty: Option<Type> = None;
        for attr in input.attrs.iter().filter(|a| a.path().is_ident(AGGREGATE)) {
            let r = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident(INPUT) {
                    let t: Type = meta.value()?.parse()?;
                    if ty.is_some() {
                        cx.error_spanned_by(&meta.path, "duplicate aggregate attribute `input`");
                    }
                    ty = Some(t);
                } else {
                    cx.error_spanned_by(
                        &meta.path,
                        format!("unknown aggregate attribute on the struct; expected {}", expected(&[INPUT])),
                    );
                    if meta.input.peek(syn::Token![=]) {
                        let _: syn::Expr = meta.value()?.parse()?;
                    }
                }
                Ok(())
            });
            if let Err(e) = r {
                cx.push(e);
            }
        }
        AggregateContainer { input: ty }
    }
}

/// The `#[aggregate(kind [= source])]` of a field; `None` (reported) when missing or invalid.
pub(crate) fn aggregate_kind(cx: &Ctxt, field: &Field) -> Option<AggKind> {
    let attrs: Vec<&Attribute> = field.attrs.iter().filter(|a| a.path().is_ident(AGGREGATE)).collect();
    let ident = field.ident.as_ref().expect("named");
    let Some(attr) = attrs.first() else {
        cx.error_spanned_by(
            ident,
            format!("field `{ident}` needs an #[aggregate(...)] attribute, one of: {}", expected(AGGREGATE_KINDS)),
        );
        return None;
    };
    for extra in &attrs[1..] {
        cx.error_spanned_by(extra, format!("duplicate #[aggregate] on field `{ident}`"));
    }
    let mut kind: Option<AggKind> = None;
    let mut custom_add: Option<Path> = None;
    let mut merge: Option<Path> = None;
    let mut invalid = false;
    let r = attr.parse_nested_meta(|meta| {
        let name = meta.path.get_ident().map_or_else(|| "?".to_string(), Ident::to_string);
        let source = |meta: &syn::meta::ParseNestedMeta| -> syn::Result<Ident> { meta.value()?.parse() };
        let k = match name.as_str() {
            "count" => AggKind::Count,
            "sum" => AggKind::Sum(source(&meta)?),
            "min" => AggKind::Min(source(&meta)?),
            "max" => AggKind::Max(source(&meta)?),
            "mean" => AggKind::Mean(source(&meta)?),
            "count_distinct" => AggKind::CountDistinct(source(&meta)?),
            "first" => AggKind::First(source(&meta)?),
            "last" => AggKind::Last(source(&meta)?),
            "custom" => {
                custom_add = Some(meta.value()?.parse()?);
                return Ok(());
            }
            "merge" => {
                merge = Some(meta.value()?.parse()?);
                return Ok(());
            }
            _ => {
                cx.error_spanned_by(
                    &meta.path,
                    format!("unknown aggregate `{name}`; expected one of: {}", expected(AGGREGATE_KINDS)),
                );
                invalid = true;
                if meta.input.peek(syn::Token![=]) {
                    let _: syn::Expr = meta.value()?.parse()?;
                }
                return Ok(());
            }
        };
        if kind.is_some() {
            cx.error_spanned_by(&meta.path, format!("field `{ident}` has two aggregates; give each its own field"));
        }
        kind = Some(k);
        Ok(())
    });
    if let Err(e) = r {
        cx.push(e);
        return None;
    }
    match (kind, custom_add) {
        (Some(_), Some(add)) => {
            cx.error_spanned_by(add, format!("field `{ident}` has two aggregates; give each its own field"));
            None
        }
        (Some(k), None) => {
            if let Some(m) = merge {
                cx.error_spanned_by(m, "`merge` goes with `custom` only");
            }
            Some(k)
        }
        (None, Some(add)) => Some(AggKind::Custom { add, merge }),
        (None, None) => {
            if !invalid {
                cx.error_spanned_by(
                    attr,
                    format!(
                        "#[aggregate] on field `{ident}` names no aggregate; expected one of: {}",
                        expected(AGGREGATE_KINDS)
                    ),
                );
            }
            None
        }
    }
}
