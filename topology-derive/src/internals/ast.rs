//! The macros' IR: what an item declares, with the original syn nodes kept for error spans.

use proc_macro2::Span;
use syn::{Data, DeriveInput, Field, Fields, Ident, LitStr, Path, Type};

use super::attr;
use super::ctxt::Ctxt;

/// A `#[derive(Record)]` struct.
pub(crate) struct Record<'a> {
    pub(crate) original: &'a DeriveInput,
    pub(crate) topic: Option<LitStr>,
    pub(crate) fields: Vec<RecordField<'a>>,
}

pub(crate) struct RecordField<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    pub(crate) key: bool,
    /// The `#[timestamp]` attribute, if any (kept for spans).
    pub(crate) timestamp: Option<Span>,
}

/// A `#[derive(Aggregate)]` struct.
pub(crate) struct Aggregate<'a> {
    pub(crate) original: &'a DeriveInput,
    pub(crate) input: Option<Type>,
    pub(crate) fields: Vec<AggregateField<'a>>,
}

pub(crate) struct AggregateField<'a> {
    pub(crate) ident: &'a Ident,
    /// `None` when the attribute is missing or invalid (already reported).
    pub(crate) kind: Option<AggKind>,
}

/// What a field aggregates; the idents name fields of the input type.
pub(crate) enum AggKind {
    Count,
    Sum(Ident),
    Min(Ident),
    Max(Ident),
    Mean(Ident),
    CountDistinct(Ident),
    First(Ident),
    Last(Ident),
    Custom { add: Path, merge: Option<Path> },
}

/// The named fields of a struct, or an error at the item.
fn named_fields<'a>(cx: &Ctxt, input: &'a DeriveInput, derive: &str) -> Option<Vec<&'a Field>> {
    match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(f) => Some(f.named.iter().collect()),
            _ => {
                cx.error_spanned_by(&input.ident, format!("#[derive({derive})] needs a struct with named fields"));
                None
            }
        },
        _ => {
            cx.error_spanned_by(&input.ident, format!("#[derive({derive})] works on structs only"));
            None
        }
    }
}

impl<'a> Record<'a> {
    pub(crate) fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Option<Record<'a>> {
        let container = attr::RecordContainer::from_ast(cx, input);
        let fields = named_fields(cx, input, "Record")?
            .into_iter()
            .map(|f| {
                let a = attr::RecordField::from_ast(cx, f);
                RecordField { ident: f.ident.as_ref().expect("named"), ty: &f.ty, key: a.key, timestamp: a.timestamp }
            })
            .collect();
        Some(Record { original: input, topic: container.topic, fields })
    }
}

impl<'a> Aggregate<'a> {
    pub(crate) fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Option<Aggregate<'a>> {
        let container = attr::AggregateContainer::from_ast(cx, input);
        let fields = named_fields(cx, input, "Aggregate")?
            .into_iter()
            .map(|f| AggregateField { ident: f.ident.as_ref().expect("named"), kind: attr::aggregate_kind(cx, f) })
            .collect();
        Some(Aggregate { original: input, input: container.input, fields })
    }
}
