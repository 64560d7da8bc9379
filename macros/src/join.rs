//! `join!` and `try_join!`.
//!
//! Each future is pinned in an `Option` on the stack; the one poll function polls every
//! future that has not finished, stores its output, and drops the finished future at once
//! (`Pin::set(None)`). `try_join!` returns the first `Err` it sees, which drops the rest
//! when the macro's block ends.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Token};

/// `(runtime path) fut, fut, ...`
struct Input {
    futures: Vec<Expr>,
}

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // The runtime path: `join!` needs only `::core`.
        let krate;
        syn::parenthesized!(krate in input);
        let _: TokenStream = krate.parse()?;
        let futures = Punctuated::<Expr, Token![,]>::parse_terminated(input)?;
        Ok(Input {
            futures: futures.into_iter().collect(),
        })
    }
}

pub(crate) fn expand(input: TokenStream, is_try: bool) -> TokenStream {
    let input: Input = match syn::parse2(input) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    let n = input.futures.len();
    if n == 0 {
        return if is_try {
            quote!(::core::result::Result::Ok(()))
        } else {
            quote!(())
        };
    }
    let span = Span::mixed_site();
    let futs: Vec<_> = (0..n)
        .map(|i| format_ident!("__fut{}", i, span = span))
        .collect();
    let outs: Vec<_> = (0..n)
        .map(|i| format_ident!("__out{}", i, span = span))
        .collect();
    let cx = syn::Ident::new("__cx", span);
    let done = syn::Ident::new("__done", span);
    let exprs = &input.futures;

    let polls = futs.iter().zip(&outs).map(|(f, o)| {
        let ready = if is_try {
            quote! {
                ::core::task::Poll::Ready(::core::result::Result::Ok(v)) => {
                    #o = ::core::option::Option::Some(v);
                    #f.set(::core::option::Option::None);
                }
                ::core::task::Poll::Ready(::core::result::Result::Err(e)) => {
                    return ::core::task::Poll::Ready(::core::result::Result::Err(e));
                }
            }
        } else {
            quote! {
                ::core::task::Poll::Ready(v) => {
                    #o = ::core::option::Option::Some(v);
                    #f.set(::core::option::Option::None);
                }
            }
        };
        quote! {
            if let ::core::option::Option::Some(fut) = #f.as_mut().as_pin_mut() {
                match ::core::future::Future::poll(fut, #cx) {
                    #ready
                    ::core::task::Poll::Pending => #done = false,
                }
            }
        }
    });
    let takes = outs.iter().map(|o| {
        quote! {
            ::core::option::Option::take(&mut #o).expect("join!: every output is stored before the join completes")
        }
    });
    let result = if is_try {
        quote!(::core::result::Result::Ok((#(#takes,)*)))
    } else {
        quote!((#(#takes,)*))
    };
    quote! {{
        #(
            let mut #futs = ::core::pin::pin!(::core::option::Option::Some(
                ::core::future::IntoFuture::into_future(#exprs)
            ));
            let mut #outs = ::core::option::Option::None;
        )*
        ::core::future::poll_fn(|#cx: &mut ::core::task::Context<'_>| {
            let mut #done = true;
            #(#polls)*
            if #done {
                ::core::task::Poll::Ready(#result)
            } else {
                ::core::task::Poll::Pending
            }
        })
        .await
    }}
}
