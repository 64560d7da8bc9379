//! `chain`: promise chaining, callback hell, the mini workflow, `step1..step4`.
//!
//! One op is four dependent calls, each fed the previous call's value.
//!
//! ```js
//! step1((e, r1) => step2(r1, (e, r2) => step3(r2, (e, r3) => step4(r3, cb))));  // hell
//! step1().then(step2).then(step3).then(step4);                                 // chain
//! const r1 = await step1(); const r2 = await step2(r1); ...                    // await
//! ```

use std::future::Future;

use weft::callback::{Callback, waterfall};
use weft::promise::PromiseExt;

use crate::service::{Kind, SvcError, svc, svc_cb};
use crate::{Case, Env};

/// Steps in one op.
pub const STEPS: usize = 4;

/// Callback hell, written out: four nested callbacks, each checking the error first.
pub fn callback_nested(
    kind: Kind,
    x: u64,
    done: impl FnOnce(Result<u64, SvcError>) + Send + 'static,
) {
    svc_cb(kind, x, move |r1: Result<u64, SvcError>| match r1 {
        Err(e) => done(Err(e)),
        Ok(r1) => {
            svc_cb(kind, r1, move |r2: Result<u64, SvcError>| match r2 {
                Err(e) => done(Err(e)),
                Ok(r2) => {
                    svc_cb(kind, r2, move |r3: Result<u64, SvcError>| match r3 {
                        Err(e) => done(Err(e)),
                        Ok(r3) => {
                            svc_cb(kind, r3, done);
                        }
                    });
                }
            });
        }
    });
}

/// Callback, flattened with `waterfall` (what the benchmark runs: the helper every callback
/// pattern shares).
pub fn callback(kind: Kind, x: u64, done: impl Callback<u64, SvcError>) {
    waterfall(
        x,
        STEPS,
        move |_, v, part| {
            svc_cb(kind, v, part);
        },
        done,
    );
}

/// Combinator: `step1().then(step2).then(step3).then(step4)`.
pub fn combinator(kind: Kind, x: u64) -> impl Future<Output = Result<u64, SvcError>> {
    svc(kind, x)
        .then(move |r1| svc(kind, r1))
        .then(move |r2| svc(kind, r2))
        .then(move |r3| svc(kind, r3))
}

/// `async fn`: four awaits in a row.
pub async fn async_fn<E: Env>(env: E, kind: Kind, x: u64) -> Result<u64, SvcError> {
    let r1 = env.svc(kind, x).await?;
    let r2 = env.svc(kind, r1).await?;
    let r3 = env.svc(kind, r2).await?;
    let r4 = env.svc(kind, r3).await?;
    Ok(r4)
}

/// The `chain` case.
#[derive(Debug)]
pub struct Chain;

impl Case for Chain {
    const ID: &'static str = "chain";
    const TITLE: &'static str = "promise chaining / callback hell / the mini workflow";
    const KINDS: &'static [Kind] = &[Kind::Ready, Kind::File, Kind::TIMER, Kind::Net];
    type Out = Result<u64, SvcError>;

    fn callback(kind: Kind, x: u64, done: impl FnOnce(Self::Out) + Send + 'static) {
        callback(kind, x, done)
    }

    fn combinator(kind: Kind, x: u64) -> impl Future<Output = Self::Out> + Send + 'static {
        combinator(kind, x)
    }

    fn async_fn<E: Env>(
        env: E,
        kind: Kind,
        x: u64,
    ) -> impl Future<Output = Self::Out> + Send + 'static {
        async_fn(env, kind, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_and_waterfall_agree() {
        let rt = weft::Runtime::builder().worker_threads(1).build().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let tx2 = tx.clone();
        rt.handle().defer(move || {
            callback_nested(Kind::Ready, 9, move |r| tx.send(r).unwrap());
            callback(Kind::Ready, 9, move |r| tx2.send(r).unwrap());
        });
        let a = rx.recv().unwrap();
        let b = rx.recv().unwrap();
        assert_eq!(a, b);
        assert_eq!(a, Ok(crate::chain_value(Kind::Ready, 9, STEPS)));
    }
}

super::entries!(Chain);
