//! `#[processor(...)] fn name(ctx, stores, record)` → the function, unchanged, plus
//! `struct Name` (the processor), `struct NameStores` (one typed handle per declared store) and the
//! `Processor` and `DeclaredProcessor` impls. Stores are named `<fn-name>-<store>`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::ItemFn;

use crate::internals::check;
use crate::internals::ctxt::Ctxt;
use crate::internals::processor::{camel, ProcessorFn};

pub(crate) fn expand(args: TokenStream, item: ItemFn) -> TokenStream {
    let cx = Ctxt::new();
    let p = ProcessorFn::from_ast(&cx, args, &item);
    check::processor(&cx, &p);
    match cx.check() {
        Ok(()) => generate(&p),
        // Keep the function so its body is still checked and one mistake stays one error.
        Err(e) => {
            let err = e.into_compile_error();
            quote!(#err #item)
        }
    }
}

fn generate(p: &ProcessorFn) -> TokenStream {
    let item = p.original;
    let vis = &item.vis;
    let fn_name = &item.sig.ident;
    let name = camel(fn_name);
    let stores_name = format_ident!("{}Stores", name, span = p.span());
    let (k, v, ko, vo) = p.types.clone().expect("checked");
    let prefix = fn_name.to_string().replace('_', "-");
    let mut fields = Vec::new();
    let mut opens = Vec::new();
    let mut builders = Vec::new();
    for s in &p.stores {
        let (field, key, value) = (&s.name, &s.key, &s.value);
        let store = format!("{prefix}-{}", s.name.to_string().replace('_', "-"));
        let (handle, open, build) = match s.kind.to_string().as_str() {
            "key_value" => (
                quote!(::topology::KeyValueStoreHandle<#key, #value>),
                quote!(init.key_value_store::<#key, #value>(#store)?),
                quote!(::topology::Stores::key_value::<#key, #value>(#store)),
            ),
            "window" => {
                let r = s.retention.as_ref().expect("checked");
                (
                    quote!(::topology::WindowStoreHandle<#key, #value>),
                    quote!(init.window_store::<#key, #value>(#store)?),
                    quote!(::topology::Stores::window::<#key, #value>(#store, #r)),
                )
            }
            _ => {
                let r = s.retention.as_ref().expect("checked");
                (
                    quote!(::topology::SessionStoreHandle<#key, #value>),
                    quote!(init.session_store::<#key, #value>(#store)?),
                    quote!(::topology::Stores::session::<#key, #value>(#store, #r)),
                )
            }
        };
        fields.push(quote!(pub #field: #handle));
        opens.push(quote!(#field: #open));
        builders.push(build);
    }
    let schedules = p.punctuations.iter().map(|pu| {
        let every = &pu.every_ms;
        let clock = if pu.stream_time { quote!(StreamTime) } else { quote!(WallClockTime) };
        quote!(init.schedule(::std::time::Duration::from_millis(#every), ::topology::PunctuationType::#clock);)
    });
    let calls = p.punctuations.iter().enumerate().map(|(i, pu)| {
        let call = &pu.call;
        quote!(#i => #call(ctx, stores, punctuation),)
    });
    let doc = format!("The processor of [`{fn_name}`], with the stores it declares.");
    let stores_doc = format!("The stores [`{fn_name}`] declared.");
    quote! {
        #item

        #[doc = #doc]
        #[derive(Default)]
        #vis struct #name {
            stores: ::core::option::Option<#stores_name>,
        }

        #[doc = #stores_doc]
        #vis struct #stores_name {
            #(#fields,)*
        }

        #[automatically_derived]
        impl ::topology::Processor<#k, #v> for #name {
            type KeyOut = #ko;
            type ValueOut = #vo;

            fn init(&mut self, init: &mut ::topology::ProcessorInit<'_>) -> ::core::result::Result<(), ::topology::TopologyError> {
                self.stores = ::core::option::Option::Some(#stores_name { #(#opens,)* });
                #(#schedules)*
                ::core::result::Result::Ok(())
            }

            fn process(&mut self, ctx: &mut ::topology::ProcessorContext<'_, #ko, #vo>, record: ::topology::Record<#k, #v>) {
                let stores = self.stores.as_ref().expect("init runs before process");
                #fn_name(ctx, stores, record)
            }

            #[allow(unused_variables)]
            fn punctuate(&mut self, ctx: &mut ::topology::ProcessorContext<'_, #ko, #vo>, punctuation: ::topology::Punctuation) {
                let stores = self.stores.as_ref().expect("init runs before punctuate");
                match punctuation.schedule {
                    #(#calls)*
                    _ => {}
                }
            }
        }

        #[automatically_derived]
        impl ::topology::DeclaredProcessor<#k, #v> for #name {
            fn stores() -> ::std::vec::Vec<::topology::StoreBuilder> {
                ::std::vec![#(#builders),*]
            }
        }
    }
}
