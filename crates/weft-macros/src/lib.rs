//! `#[trace]`: wraps a function in a weft span.
//!
//! ```ignore
//! #[weft::trace]                                  // span named after the function
//! fn load(id: u64) { … }
//!
//! #[weft::trace(name = "db.query", record(id))]   // custom name, `id` recorded (Debug)
//! async fn query(id: u64) -> Result<Row, Error> { … }
//! ```
//!
//! A sync function gets an entered span for its body. An async function's body
//! becomes a future run with [`weft::FutureExt::in_span`], so the span follows the
//! task across `.await` points and threads. Recorded arguments are formatted only
//! when the span records.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, LitStr, ReturnType, Token, Type};

struct Args {
    name: Option<LitStr>,
    record: Vec<Ident>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args { name: None, record: Vec::new() };
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            if key == "name" {
                input.parse::<Token![=]>()?;
                args.name = Some(input.parse()?);
            } else if key == "record" {
                let content;
                syn::parenthesized!(content in input);
                let ids: Punctuated<Ident, Token![,]> = content.parse_terminated(Ident::parse, Token![,])?;
                args.record.extend(ids);
            } else {
                return Err(syn::Error::new(key.span(), "expected `name = \"…\"` or `record(arg, …)`"));
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}

/// Wraps the function body in a span. See the crate documentation.
#[proc_macro_attribute]
pub fn trace(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = syn::parse_macro_input!(attr as Args);
    let func = syn::parse_macro_input!(item as ItemFn);
    match expand(args, func) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn contains_impl_trait(ty: &Type) -> bool {
    quote!(#ty).to_string().contains("impl ")
}

fn expand(args: Args, func: ItemFn) -> syn::Result<TokenStream2> {
    let ItemFn { attrs, vis, sig, block } = func;
    let name = match &args.name {
        Some(n) => quote!(#n),
        None => {
            let s = LitStr::new(&sig.ident.to_string(), sig.ident.span());
            quote!(#s)
        }
    };
    for id in &args.record {
        let known = sig.inputs.iter().any(|a| match a {
            syn::FnArg::Typed(p) => {
                quote!(#p).to_string().starts_with(&format!("{id} "))
                    || matches!(&*p.pat, syn::Pat::Ident(pi) if pi.ident == *id)
            }
            syn::FnArg::Receiver(_) => id == "self",
        });
        if !known {
            return Err(syn::Error::new(id.span(), format!("`{id}` is not an argument of this function")));
        }
    }
    let record = args.record.iter().map(|id| {
        let key = LitStr::new(&id.to_string(), id.span());
        quote_spanned!(id.span()=> __weft_span.set_attribute(#key, ::weft::__private::debug_value(&#id));)
    });
    let record = quote! {
        if __weft_span.is_recording() { #(#record)* }
    };
    let body = if sig.asyncness.is_some() {
        // Pin the async block's output type to the declared return type so `?` and
        // `return` inside the body infer as they would without the macro.
        let ret_pin = match &sig.output {
            ReturnType::Type(_, ty) if !contains_impl_trait(ty) => quote! {
                #[allow(unreachable_code, clippy::diverging_sub_expression)]
                if false {
                    let __weft_ret: #ty = loop {};
                    return __weft_ret;
                }
            },
            _ => quote!(),
        };
        quote_spanned! {block.span()=>
            let mut __weft_span = ::weft::Span::child(#name);
            #record
            ::weft::__private::FutureExt::in_span(async move { #ret_pin #block }, __weft_span).await
        }
    } else {
        quote_spanned! {block.span()=>
            let mut __weft_span = ::weft::Span::enter(#name);
            #record
            #block
        }
    };
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    })
}
