//! `#[topology(application_id = "..."[, redis = path])] fn name(builder: &mut StreamsBuilder)` → the
//! function, unchanged, plus `struct NameApp` implementing `topology::Application` (id, topology and the
//! optional Redis mapping), what the app runner uses.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{FnArg, ItemFn, LitStr, ReturnType};

use crate::internals::ctxt::Ctxt;
use crate::internals::processor::camel;

pub(crate) fn expand(args: TokenStream, item: ItemFn) -> TokenStream {
    let cx = Ctxt::new();
    let mut id: Option<LitStr> = None;
    let mut redis: Option<syn::Path> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("application_id") {
            let lit: LitStr = meta.value()?.parse()?;
            let v = lit.value();
            if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                cx.error_spanned_by(&lit, "an application id is non-empty and uses only ASCII letters, digits, `.`, `_` and `-` (it names Kafka topics and a consumer group)");
            }
            id = Some(lit);
            Ok(())
        } else if meta.path.is_ident("redis") {
            redis = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("unknown topology attribute; expected one of: `application_id`, `redis`"))
        }
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, args) {
        cx.push(e);
    }
    if id.is_none() {
        cx.error_spanned_by(
            &item.sig.ident,
            "#[topology] needs the application id: #[topology(application_id = \"...\")]",
        );
    }
    let one_builder = item.sig.inputs.len() == 1 && matches!(item.sig.inputs.first(), Some(FnArg::Typed(_)));
    if !one_builder || !matches!(item.sig.output, ReturnType::Default) {
        cx.error_spanned_by(&item.sig, "a #[topology] fn takes `builder: &mut StreamsBuilder` and returns nothing");
    }
    if let Err(e) = cx.check() {
        let err = e.into_compile_error();
        return quote!(#err #item);
    }
    let id = id.expect("checked");
    let fn_name = &item.sig.ident;
    let vis = &item.vis;
    let app = format_ident!("{}App", camel(fn_name));
    let doc = format!("The application built by [`{fn_name}`], id `{}`.", id.value());
    let redis_fn = redis.map(|path| {
        quote! {
            fn redis_commands(topic: &str, record: &::topology::RawRecord) -> ::std::vec::Vec<::topology::sink::redis::RedisCommand> {
                #path(topic, record)
            }
        }
    });
    quote! {
        #item

        #[doc = #doc]
        #[derive(Debug, Clone, Copy, Default)]
        #vis struct #app;

        #[automatically_derived]
        impl ::topology::Application for #app {
            const ID: &'static str = #id;
            fn topology() -> ::core::result::Result<::topology::Topology, ::topology::TopologyError> {
                let mut builder = ::topology::StreamsBuilder::new();
                #fn_name(&mut builder);
                builder.build()
            }
            #redis_fn
        }
    }
}
