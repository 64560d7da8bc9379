//! `#[weft::main]` and `#[weft::test]`.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ItemFn, Lit, Meta, ReturnType, Token};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Main,
    Test,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Main => "weft::main",
            Kind::Test => "weft::test",
        }
    }
}

/// The parsed arguments.
struct Config {
    worker_threads: Option<(usize, Span)>,
    io: Option<(&'static str, Span)>,
    krate: Option<syn::Path>,
}

fn error(span: Span, msg: impl std::fmt::Display) -> syn::Error {
    syn::Error::new(span, msg)
}

fn parse_config(kind: Kind, args: TokenStream) -> syn::Result<Config> {
    let name = kind.name();
    let pairs = "arguments are `key = value` pairs separated by commas \
                 (`worker_threads = 2`, `io = \"fallback\"`, `crate = \"weft\"`)";
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated
        .parse2(args)
        .map_err(|e| error(e.span(), format!("#[{name}]: {pairs}: {e}")))?;
    let mut list = Vec::new();
    for meta in metas {
        match meta {
            Meta::NameValue(nv) => list.push(nv),
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    format!("#[{name}]: {pairs}; this one has no `= value`"),
                ));
            }
        }
    }
    let mut config = Config {
        worker_threads: None,
        io: None,
        krate: None,
    };
    for arg in list {
        let key = arg
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_else(|| arg.path.to_token_stream().to_string());
        let span = arg.value.span();
        match key.as_str() {
            "worker_threads" => {
                if config.worker_threads.is_some() {
                    return Err(error(
                        arg.path.span(),
                        format!("#[{name}]: `worker_threads` given twice"),
                    ));
                }
                let n = match &arg.value {
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(i), ..
                    }) => i.base10_parse::<usize>()?,
                    _ => {
                        return Err(error(
                            span,
                            format!(
                                "#[{name}]: `worker_threads` takes an integer literal, as in `worker_threads = 4`"
                            ),
                        ));
                    }
                };
                if n == 0 {
                    return Err(error(
                        span,
                        format!("#[{name}]: `worker_threads` must be at least 1"),
                    ));
                }
                config.worker_threads = Some((n, span));
            }
            "io" => {
                if config.io.is_some() {
                    return Err(error(
                        arg.path.span(),
                        format!("#[{name}]: `io` given twice"),
                    ));
                }
                let Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) = &arg.value
                else {
                    return Err(error(
                        span,
                        format!(
                            "#[{name}]: `io` takes a string: \"uring\", \"fallback\" or \"auto\""
                        ),
                    ));
                };
                let variant = match s.value().as_str() {
                    "uring" => "Required",
                    "fallback" => "Disabled",
                    "auto" => "Auto",
                    other => {
                        return Err(error(
                            span,
                            format!(
                                "#[{name}]: unknown io driver {other:?}: expected \"uring\", \"fallback\" or \"auto\""
                            ),
                        ));
                    }
                };
                config.io = Some((variant, span));
            }
            "crate" => {
                let Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) = &arg.value
                else {
                    return Err(error(
                        span,
                        format!(
                            "#[{name}]: `crate` takes the runtime crate's path as a string, as in `crate = \"weft_runtime\"`"
                        ),
                    ));
                };
                config.krate = Some(s.parse::<syn::Path>().map_err(|_| {
                    error(
                        span,
                        format!("#[{name}]: `crate = {:?}` is not a path", s.value()),
                    )
                })?);
            }
            other => {
                return Err(error(
                    arg.path.span(),
                    format!(
                        "#[{name}]: unknown argument `{other}`; expected `worker_threads`, `io` or `crate`"
                    ),
                ));
            }
        }
    }
    Ok(config)
}

pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    // Parse the function first: if it does not parse, hand it back untouched beside the
    // error so that the compiler's own diagnostics for the body still appear.
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let err = e.to_compile_error();
            return quote! { #err #item };
        }
    };
    match expand_fn(kind, args, func.clone()) {
        Ok(out) => out,
        Err(e) => {
            // Keep a plain function in place of the item, so the one error shown is ours
            // (not "main function not found" or a missing-function error at call sites).
            let err = e.to_compile_error();
            let mut func = func;
            func.sig.asyncness = None;
            func.block = syn::parse_quote!({
                ::core::panic!("this function's attribute macro failed to expand")
            });
            quote! { #err #func }
        }
    }
}

fn expand_fn(kind: Kind, args: TokenStream, func: ItemFn) -> syn::Result<TokenStream> {
    let name = kind.name();
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        return Err(error(
            sig.fn_token.span(),
            format!("#[{name}] goes on an `async fn`: add `async` before `fn`"),
        ));
    }
    if !sig.inputs.is_empty() {
        let what = if kind == Kind::Main {
            "`main`"
        } else {
            "a test"
        };
        return Err(syn::Error::new_spanned(
            &sig.inputs,
            format!("#[{name}]: {what} takes no arguments"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            format!("#[{name}]: the function cannot be generic"),
        ));
    }
    if kind == Kind::Test {
        if let Some(attr) = func.attrs.iter().find(|a| a.path().is_ident("test")) {
            return Err(syn::Error::new_spanned(
                attr,
                "#[weft::test] already makes the function a test: remove the second `#[test]`",
            ));
        }
    }
    let config = parse_config(kind, args)?;
    let krate = config
        .krate
        .map(|p| p.into_token_stream())
        .unwrap_or_else(|| quote_spanned!(Span::call_site()=> weft));

    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let mut sig = sig;
    sig.asyncness = None;
    let output = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let workers = config
        .worker_threads
        .map(|(n, span)| quote_spanned!(span=> __weft_builder.worker_threads(#n);));
    let io = config.io.map(|(variant, span)| {
        let variant = syn::Ident::new(variant, span);
        quote_spanned!(span=> __weft_builder.io_uring(#krate::UringMode::#variant);)
    });
    let test_attr = (kind == Kind::Test).then(|| quote!(#[::core::prelude::v1::test]));
    let what = name;
    Ok(quote! {
        #test_attr
        #(#attrs)*
        #vis #sig {
            // Gives the async block its output type up front, so `?` in the body converts
            // into the function's error type.
            fn __weft_typed<T, F: ::core::future::Future<Output = T>>(f: F) -> F {
                f
            }
            let __weft_body = __weft_typed::<#output, _>(async move #block);
            let mut __weft_builder = #krate::Runtime::builder();
            #workers
            #io
            let __weft_runtime = match __weft_builder.build() {
                ::core::result::Result::Ok(rt) => rt,
                ::core::result::Result::Err(e) => {
                    ::core::panic!("#[{}]: could not build the runtime: {}", #what, e)
                }
            };
            __weft_runtime.block_on(__weft_body)
        }
    })
}
