//! `#[derive(Record)]` → `impl topology::TopicRecord`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::DeriveInput;

use crate::internals::ast::Record;
use crate::internals::check;
use crate::internals::ctxt::Ctxt;

pub(crate) fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let record = Record::from_ast(&cx, input);
    if let Some(r) = &record {
        check::record(&cx, r);
    }
    cx.check()?;
    Ok(expand(&record.expect("no errors")))
}

fn expand(r: &Record) -> TokenStream {
    let ident = &r.original.ident;
    let (impl_generics, ty_generics, where_clause) = r.original.generics.split_for_impl();
    let topic = r.topic.as_ref().expect("checked");
    let keys: Vec<_> = r.fields.iter().filter(|f| f.key).collect();
    // Spans on the field types, so "cannot be a record key" points at the offending type.
    let key_types: Vec<TokenStream> = keys
        .iter()
        .map(|f| {
            let ty = f.ty;
            quote_spanned!(ty.span()=> #ty)
        })
        .collect();
    let key_exprs: Vec<TokenStream> = keys
        .iter()
        .map(|f| {
            let name = f.ident;
            quote!(::core::clone::Clone::clone(&self.#name))
        })
        .collect();
    let (key_ty, key_expr) = match key_types.len() {
        0 => (quote!(()), quote!()),
        1 => (key_types[0].clone(), key_exprs[0].clone()),
        _ => (quote!((#(#key_types),*)), quote!((#(#key_exprs),*))),
    };
    let ts = r.fields.iter().find(|f| f.timestamp.is_some());
    let has_ts = ts.is_some();
    let ts_expr = match ts {
        Some(f) => {
            let (name, ty) = (f.ident, f.ty);
            quote_spanned!(ty.span()=> <#ty as ::topology::EventTime>::event_time(&self.#name))
        }
        None => quote!(::core::result::Result::Err(::std::string::String::from("no #[timestamp] field"))),
    };
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #impl_generics ::topology::TopicRecord for #ident #ty_generics #where_clause {
                type Key = #key_ty;
                const TOPIC: &'static str = #topic;
                const HAS_TIMESTAMP: bool = #has_ts;
                fn key(&self) -> Self::Key {
                    #key_expr
                }
                fn timestamp(&self) -> ::core::result::Result<i64, ::std::string::String> {
                    #ts_expr
                }
                fn value_serde() -> ::topology::SerdeRef<Self> {
                    ::topology::Serdes::json()
                }
            }
        };
    }
}
