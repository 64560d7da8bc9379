//! `select!`.
//!
//! # Expansion
//!
//! 1. Evaluate every precondition (`, if cond`), in order; a false one disables its branch.
//! 2. Evaluate every future expression (disabled ones too, as tokio does) and pin it on the
//!    stack.
//! 3. Poll: starting at a random branch (or the first, with `biased;`), poll each enabled
//!    future once per wake. The first to be ready whose output matches its branch's pattern
//!    wins; one whose output does not match is disabled and the loop goes on. When every
//!    branch is disabled, the `else` branch runs (no `else`: a panic saying so).
//! 4. The polling block ends there, so every losing future is dropped *before* the winning
//!    branch's body runs; the body runs outside any closure, so `return`, `?`, `break` and
//!    `continue` in it act on the code around the `select!`.
//!
//! The pattern is first tried on a reference to the output with its `mut` and `ref`
//! removed (so a failed match moves nothing), then matched for real in step 4.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Pat, Token};

struct Branch {
    pat: Pat,
    fut: Expr,
    cond: Option<Expr>,
    body: Expr,
}

struct Input {
    krate: TokenStream,
    biased: bool,
    branches: Vec<Branch>,
    else_body: Option<Expr>,
}

/// Parses a branch body: a block (comma optional) or an expression followed by a comma
/// (or the end of the input), as in a `match` arm.
fn parse_body(input: ParseStream<'_>) -> syn::Result<Expr> {
    if input.peek(syn::token::Brace) {
        let block: syn::ExprBlock = input.parse()?;
        if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
        }
        Ok(Expr::Block(block))
    } else {
        let e: Expr = input.parse()?;
        if !input.is_empty() {
            input.parse::<Token![,]>().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "select!: a branch whose body is not a block ends with a comma",
                )
            })?;
        }
        Ok(e)
    }
}

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let krate;
        syn::parenthesized!(krate in input);
        let krate: TokenStream = krate.parse()?;
        let mut biased = false;
        if input.peek(syn::Ident) && input.peek2(Token![;]) {
            let fork = input.fork();
            let ident: syn::Ident = fork.parse()?;
            if ident == "biased" {
                input.parse::<syn::Ident>()?;
                input.parse::<Token![;]>()?;
                biased = true;
            }
        }
        let mut branches = Vec::new();
        let mut else_body = None;
        while !input.is_empty() {
            if input.peek(Token![else]) {
                let else_token: Token![else] = input.parse()?;
                input.parse::<Token![=>]>()?;
                if else_body.is_some() {
                    return Err(syn::Error::new(
                        else_token.span,
                        "select!: only one `else` branch is allowed",
                    ));
                }
                else_body = Some(parse_body(input)?);
                continue;
            }
            let pat = Pat::parse_multi_with_leading_vert(input)?;
            input.parse::<Token![=]>().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "select!: a branch is `pattern = future => body` (or `else => body`)",
                )
            })?;
            let fut: Expr = input.parse()?;
            let cond = if input.peek(Token![,]) && input.peek2(Token![if]) {
                input.parse::<Token![,]>()?;
                input.parse::<Token![if]>()?;
                Some(Expr::parse_without_eager_brace(input)?)
            } else {
                None
            };
            input.parse::<Token![=>]>()?;
            let body = parse_body(input)?;
            branches.push(Branch {
                pat,
                fut,
                cond,
                body,
            });
        }
        Ok(Input {
            krate,
            biased,
            branches,
            else_body,
        })
    }
}

/// Removes `mut` and `ref` from the bindings of `pat`, so it can be tried on a reference.
fn clean_pattern(pat: &mut Pat) {
    match pat {
        Pat::Ident(p) => {
            p.by_ref = None;
            p.mutability = None;
            if let Some((_, sub)) = &mut p.subpat {
                clean_pattern(sub);
            }
        }
        Pat::Or(p) => p.cases.iter_mut().for_each(clean_pattern),
        Pat::Paren(p) => clean_pattern(&mut p.pat),
        Pat::Reference(p) => {
            p.mutability = None;
            clean_pattern(&mut p.pat);
        }
        Pat::Slice(p) => p.elems.iter_mut().for_each(clean_pattern),
        Pat::Struct(p) => p.fields.iter_mut().for_each(|f| clean_pattern(&mut f.pat)),
        Pat::Tuple(p) => p.elems.iter_mut().for_each(clean_pattern),
        Pat::TupleStruct(p) => p.elems.iter_mut().for_each(clean_pattern),
        Pat::Type(p) => clean_pattern(&mut p.pat),
        _ => {}
    }
}

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let input: Input = match syn::parse2(input) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    let n = input.branches.len();
    let no_else = quote! {
        ::core::panic!("select!: all branches are disabled and there is no `else` branch")
    };
    if n == 0 {
        return match input.else_body {
            Some(body) => quote!({ #body }),
            None => syn::Error::new(
                Span::call_site(),
                "select!: needs at least one `pattern = future => body` branch",
            )
            .to_compile_error(),
        };
    }
    if n > 64 {
        return syn::Error::new(
            input.branches[64]
                .pat
                .to_token_stream()
                .into_iter()
                .next()
                .map_or(Span::call_site(), |t| t.span()),
            "select!: at most 64 branches",
        )
        .to_compile_error();
    }
    let span = Span::mixed_site();
    let krate = &input.krate;
    let out_enum = syn::Ident::new("__SelectOut", span);
    let disabled = syn::Ident::new("__disabled", span);
    let cx = syn::Ident::new("__cx", span);
    let start = syn::Ident::new("__start", span);
    let value = syn::Ident::new("__value", span);
    let out = syn::Ident::new("__out", span);
    let i = syn::Ident::new("__i", span);
    let types: Vec<_> = (0..n)
        .map(|i| format_ident!("__T{}", i, span = span))
        .collect();
    let variants: Vec<_> = (0..n)
        .map(|i| format_ident!("__B{}", i, span = span))
        .collect();
    let futs: Vec<_> = (0..n)
        .map(|i| format_ident!("__fut{}", i, span = span))
        .collect();
    let all_mask: u64 = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };

    let conds = input.branches.iter().enumerate().filter_map(|(i, b)| {
        b.cond.as_ref().map(|c| {
            let bit = 1u64 << i;
            quote! { if !(#c) { #disabled |= #bit; } }
        })
    });
    let exprs = input.branches.iter().map(|b| &b.fut);
    let arms = input.branches.iter().enumerate().map(|(i, b)| {
        let bit = 1u64 << i;
        let fut = &futs[i];
        let variant = &variants[i];
        let index = i as u32;
        let mut check = b.pat.clone();
        clean_pattern(&mut check);
        quote! {
            #index => {
                if #disabled & #bit != 0 {
                    continue;
                }
                let #value = match ::core::future::Future::poll(#fut.as_mut(), #cx) {
                    ::core::task::Poll::Ready(v) => v,
                    ::core::task::Poll::Pending => continue,
                };
                match &#value {
                    #[allow(unused_variables)]
                    #check => {}
                    #[allow(unreachable_patterns)]
                    _ => {
                        #disabled |= #bit;
                        continue;
                    }
                }
                return ::core::task::Poll::Ready(#out_enum::#variant(#value));
            }
        }
    });
    let handlers = input.branches.iter().enumerate().map(|(i, b)| {
        let variant = &variants[i];
        let pat = &b.pat;
        let body = &b.body;
        quote! { #out_enum::#variant(#pat) => #body, }
    });
    let else_body = input.else_body.map_or(no_else, |b| b.into_token_stream());
    let n32 = n as u32;
    // Biased (or one branch): poll in order; else from a random branch, wrapping around.
    let (start_stmt, index_expr) = if input.biased || n == 1 {
        (quote!(), quote!(#i))
    } else {
        (
            quote!(let #start: u32 = #krate::__macro_support::thread_rng_n(#n32);),
            quote!((#start + #i) % #n32),
        )
    };
    quote! {{
        enum #out_enum<#(#types,)*> {
            #(#variants(#types),)*
            __Disabled,
        }
        let #out = {
            let mut #disabled: u64 = 0;
            #(#conds)*
            #(
                let mut #futs = ::core::pin::pin!(::core::future::IntoFuture::into_future(#exprs));
            )*
            ::core::future::poll_fn(|#cx: &mut ::core::task::Context<'_>| {
                #start_stmt
                for #i in 0..#n32 {
                    match #index_expr {
                        #(#arms)*
                        _ => ::core::unreachable!(),
                    }
                }
                if #disabled == #all_mask {
                    ::core::task::Poll::Ready(#out_enum::__Disabled)
                } else {
                    ::core::task::Poll::Pending
                }
            })
            .await
        };
        match #out {
            #(#handlers)*
            #out_enum::__Disabled => #else_body,
            #[allow(unreachable_patterns)]
            _ => ::core::unreachable!("select!: the branch's pattern matched when it was tried"),
        }
    }}
}
