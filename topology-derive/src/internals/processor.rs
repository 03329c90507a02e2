//! The IR of `#[processor(...)] fn ...`: declared stores, punctuations, and the types taken from the
//! function's signature `(ctx: &mut ProcessorContext<'_, KOut, VOut>, stores: &NameStores, record: Record<K, V>)`.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, ItemFn, LitInt, Path, PathArguments, Token, Type};

use super::ctxt::Ctxt;

pub(crate) const STORE_KINDS: &[&str] = &["key_value", "window", "session"];

/// `name: kind<K, V>` or `name: kind<K, V>(retention_ms = <expr>)` (an `i64` expression: a literal, a
/// constant, `GAP_MS + GRACE_MS`, a `const fn` call, …).
pub(crate) struct StoreDecl {
    pub(crate) name: Ident,
    pub(crate) kind: Ident,
    pub(crate) key: Type,
    pub(crate) value: Type,
    pub(crate) retention: Option<syn::Expr>,
}

impl Parse for StoreDecl {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        input.parse::<Token![:]>()?;
        let kind: Ident = input.parse()?;
        input.parse::<Token![<]>()?;
        let key: Type = input.parse()?;
        input.parse::<Token![,]>()?;
        let value: Type = input.parse()?;
        input.parse::<Token![>]>()?;
        let mut retention = None;
        if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            let k: Ident = content.parse()?;
            if k != "retention_ms" {
                return Err(syn::Error::new(k.span(), "expected `retention_ms = <milliseconds>`"));
            }
            content.parse::<Token![=]>()?;
            retention = Some(content.parse()?);
        }
        Ok(StoreDecl { name, kind, key, value, retention })
    }
}

/// `punctuate(stream_time = N | wall_clock = N, call = path)`.
pub(crate) struct Punctuate {
    pub(crate) stream_time: bool,
    pub(crate) every_ms: LitInt,
    pub(crate) call: Path,
}

pub(crate) struct ProcessorFn<'a> {
    pub(crate) original: &'a ItemFn,
    pub(crate) stores: Vec<StoreDecl>,
    pub(crate) punctuations: Vec<Punctuate>,
    /// (KIn, VIn, KOut, VOut)
    pub(crate) types: Option<(Type, Type, Type, Type)>,
}

/// `Name<.., A, B>` → the last two type arguments.
fn last_two_type_args(ty: &Type) -> Option<(Type, Type)> {
    let Type::Path(p) = ty else { return None };
    let seg = p.path.segments.last()?;
    let PathArguments::AngleBracketed(args) = &seg.arguments else { return None };
    let types: Vec<&Type> = args
        .args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    (types.len() >= 2).then(|| (types[types.len() - 2].clone(), types[types.len() - 1].clone()))
}

fn strip_ref(ty: &Type) -> &Type {
    match ty {
        Type::Reference(r) => &r.elem,
        t => t,
    }
}

pub(crate) fn camel(ident: &Ident) -> Ident {
    let s: String =
        ident.to_string().split('_').filter(|p| !p.is_empty()).map(|p| p[..1].to_uppercase() + &p[1..]).collect();
    Ident::new(&s, ident.span())
}

impl<'a> ProcessorFn<'a> {
    pub(crate) fn from_ast(cx: &Ctxt, args: proc_macro2::TokenStream, item: &'a ItemFn) -> ProcessorFn<'a> {
        let mut stores = Vec::new();
        let mut punctuations = Vec::new();
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("stores") {
                let content;
                syn::parenthesized!(content in meta.input);
                let decls = Punctuated::<StoreDecl, Token![,]>::parse_terminated(&content)?;
                stores.extend(decls);
                Ok(())
            } else if meta.path.is_ident("punctuate") {
                let (mut clock, mut call): (Option<(bool, LitInt)>, Option<Path>) = (None, None);
                meta.parse_nested_meta(|inner| {
                    if inner.path.is_ident("stream_time") || inner.path.is_ident("wall_clock") {
                        clock = Some((inner.path.is_ident("stream_time"), inner.value()?.parse()?));
                    } else if inner.path.is_ident("call") {
                        call = Some(inner.value()?.parse()?);
                    } else {
                        return Err(inner.error("expected `stream_time = <ms>`, `wall_clock = <ms>` or `call = <fn>`"));
                    }
                    Ok(())
                })?;
                match (clock, call) {
                    (Some((stream_time, every_ms)), Some(call)) => {
                        punctuations.push(Punctuate { stream_time, every_ms, call })
                    }
                    _ => cx.error_spanned_by(
                        &meta.path,
                        "punctuate needs a clock (`stream_time = <ms>` or `wall_clock = <ms>`) and `call = <fn>`",
                    ),
                }
                Ok(())
            } else {
                Err(meta.error("unknown processor attribute; expected one of: `stores`, `punctuate`"))
            }
        });
        if let Err(e) = syn::parse::Parser::parse2(parser, args) {
            cx.push(e);
        }
        let types = Self::signature_types(cx, item);
        ProcessorFn { original: item, stores, punctuations, types }
    }

    /// Reads (KIn, VIn, KOut, VOut) from `(ctx, stores, record)`, reporting a wrong signature.
    fn signature_types(cx: &Ctxt, item: &ItemFn) -> Option<(Type, Type, Type, Type)> {
        let inputs: Vec<&FnArg> = item.sig.inputs.iter().collect();
        let usage = "a #[processor] fn takes (ctx: &mut ProcessorContext<'_, KOut, VOut>, stores: &NameStores, record: Record<K, V>)";
        if inputs.len() != 3 {
            let span = if inputs.is_empty() { item.sig.ident.span() } else { item.sig.inputs.span() };
            cx.push(syn::Error::new(span, usage));
            return None;
        }
        let ty = |a: &FnArg| match a {
            FnArg::Typed(t) => Some((*t.ty).clone()),
            FnArg::Receiver(_) => None,
        };
        let (Some(ctx), Some(stores), Some(record)) = (ty(inputs[0]), ty(inputs[1]), ty(inputs[2])) else {
            cx.push(syn::Error::new(item.sig.inputs.span(), usage));
            return None;
        };
        let expected_stores = format!("{}Stores", camel(&item.sig.ident));
        let stores_ok = matches!(strip_ref(&stores), Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == expected_stores));
        if !stores_ok {
            cx.error_spanned_by(
                &stores,
                format!("the second parameter must be `&{expected_stores}` (the stores this macro declares)"),
            );
        }
        let out = last_two_type_args(strip_ref(&ctx));
        let inp = last_two_type_args(&record);
        if out.is_none() {
            cx.error_spanned_by(&ctx, "the first parameter must be `&mut ProcessorContext<'_, KOut, VOut>`");
        }
        if inp.is_none() {
            cx.error_spanned_by(&record, "the third parameter must be `Record<K, V>`");
        }
        let ((k, v), (ko, vo)) = (inp?, out?);
        stores_ok.then_some((k, v, ko, vo))
    }

    pub(crate) fn span(&self) -> Span {
        self.original.sig.ident.span()
    }
}
