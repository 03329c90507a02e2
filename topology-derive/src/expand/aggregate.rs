//! `#[derive(Aggregate)]` → `impl topology::Aggregator<Input>`, and `Subtractable` when every field
//! can take an input out again (count, sum, mean).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use crate::internals::ast::{AggKind, Aggregate};
use crate::internals::check;
use crate::internals::ctxt::Ctxt;

pub(crate) fn derive(input: &syn::DeriveInput) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let aggregate = Aggregate::from_ast(&cx, input);
    if let Some(a) = &aggregate {
        check::aggregate(&cx, a);
    }
    cx.check()?;
    Ok(expand(&aggregate.expect("no errors")))
}

/// Statements for `add`, `merge` and (if possible) `subtract` of one field.
fn field(f: &syn::Ident, kind: &AggKind) -> (TokenStream, TokenStream, Option<TokenStream>) {
    // Spans on the source ident: a misspelled or non-numeric source field is reported there, once.
    let numeric = |s: &syn::Ident| quote_spanned!(s.span()=> ::topology::__private::numeric(&input.#s));
    match kind {
        AggKind::Count => (quote!(self.#f += 1;), quote!(self.#f += other.#f;), Some(quote!(self.#f -= 1;))),
        AggKind::Sum(s) => {
            let v = numeric(s);
            (quote!(self.#f += #v;), quote!(self.#f += other.#f;), Some(quote!(self.#f -= #v;)))
        }
        AggKind::Min(s) | AggKind::Max(s) => {
            let better = if matches!(kind, AggKind::Min(_)) { quote!(<) } else { quote!(>) };
            let v = numeric(s);
            let offer = quote!(if self.#f.as_ref().is_none_or(|m| v #better *m) {
                self.#f = ::core::option::Option::Some(v);
            });
            (
                quote!({
                    let v = #v;
                    #offer
                }),
                quote!(if let ::core::option::Option::Some(v) = other.#f {
                    #offer
                }),
                None,
            )
        }
        AggKind::Mean(s) => {
            let v = numeric(s);
            (
                quote!(self.#f.add(::topology::Numeric::to_f64(#v));),
                quote!(self.#f.merge(other.#f);),
                Some(quote!(self.#f.subtract(::topology::Numeric::to_f64(#v));)),
            )
        }
        AggKind::CountDistinct(s) => {
            (quote_spanned!(s.span()=> self.#f.add(&input.#s);), quote!(self.#f.merge(other.#f);), None)
        }
        AggKind::First(s) | AggKind::Last(s) => {
            (quote_spanned!(s.span()=> self.#f.add(&input.#s, timestamp);), quote!(self.#f.merge(other.#f);), None)
        }
        AggKind::Custom { add, merge } => {
            let merge = merge.as_ref().expect("checked");
            (quote!(#add(&mut self.#f, input, timestamp);), quote!(#merge(&mut self.#f, other.#f);), None)
        }
    }
}

fn expand(a: &Aggregate) -> TokenStream {
    let ident = &a.original.ident;
    let input_ty = a.input.as_ref().expect("checked");
    let (impl_generics, ty_generics, where_clause) = a.original.generics.split_for_impl();
    let (mut adds, mut merges, mut subs) = (Vec::new(), Vec::new(), Vec::new());
    let mut subtractable = true;
    for f in &a.fields {
        let kind = f.kind.as_ref().expect("checked");
        let (add, merge, sub) = field(f.ident, kind);
        adds.push(add);
        merges.push(merge);
        match sub {
            Some(s) => subs.push(s),
            None => subtractable = false,
        }
    }
    let subtract = subtractable.then(|| {
        quote! {
            #[automatically_derived]
            impl #impl_generics ::topology::Subtractable<#input_ty> for #ident #ty_generics #where_clause {
                #[allow(unused_variables)]
                fn subtract(&mut self, input: &#input_ty, timestamp: i64) {
                    #(#subs)*
                }
            }
        }
    });
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #impl_generics ::topology::Aggregator<#input_ty> for #ident #ty_generics #where_clause {
                #[allow(unused_variables)]
                fn add(&mut self, input: &#input_ty, timestamp: i64) {
                    #(#adds)*
                }
                #[allow(unused_variables)]
                fn merge(&mut self, other: Self) {
                    #(#merges)*
                }
            }
            #subtract
        };
    }
}
