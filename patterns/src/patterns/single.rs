//! `single`: the basics — `fetchData(callback)`, `new Promise(...)`, `async function hello()`.
//!
//! One op is one service call.
//!
//! ```js
//! fetchData((result) => console.log("Received:", result));   // callback
//! fetchData().then((data) => console.log(data));              // promise
//! const data = await fetchData();                             // async/await
//! ```

use std::future::Future;

use weft::promise::PromiseExt;

use crate::service::{Kind, SvcError, svc, svc_cb};
use crate::{Case, Env};

/// Callback: `fetchData((err, data) => ...)`.
pub fn callback(kind: Kind, x: u64, done: impl FnOnce(Result<u64, SvcError>) + Send + 'static) {
    svc_cb(kind, x, done);
}

/// Combinator: the promise itself (`.map_ok` stands for a `.then(v => v)` consumer).
pub fn combinator(kind: Kind, x: u64) -> impl Future<Output = Result<u64, SvcError>> {
    svc(kind, x).map_ok(|v| v)
}

/// `async fn`: `const data = await fetchData()`.
pub async fn async_fn<E: Env>(env: E, kind: Kind, x: u64) -> Result<u64, SvcError> {
    let data = env.svc(kind, x).await?;
    Ok(data)
}

/// The `single` case.
#[derive(Debug)]
pub struct Single;

impl Case for Single {
    const ID: &'static str = "single";
    const TITLE: &'static str = "callback / promise / async fn basics";
    const KINDS: &'static [Kind] = &[Kind::Ready, Kind::File, Kind::Net];
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

super::entries!(Single);
