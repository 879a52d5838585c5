//! keyturn-core: the rotation logic of keyturn, with no AWS SDK and no I/O.
//!
//! - [`config`]: the settings the function and the CLI both read, defined once.
//! - [`secret`]: secret material (redacted, zeroized) and the three secret value shapes.
//! - [`event`]: the rotation event Secrets Manager sends.
//! - [`ports`]: the small async traits through which the core reaches Secrets Manager, IAM, STS
//!   and the clock, and the domain view of AWS errors.
//! - [`tags`]: every staging label and `keyturn:*` tag, defined once.
//! - [`user`]: the IAM user a secret's key belongs to.
//! - [`sink`]: the sinks `keyturn:sink:*` tags declare, and their one parser.
//! - [`restart`]: the restart targets `keyturn:restart:*` tags declare, and their one parser.
//! - [`state`]: the facts about one secret and its user ([`state::SecretState`]), and their one
//!   reader.
//! - [`rules`]: the rule book, pure: whose key it is, which key may be retired and why, policy.
//! - [`rotation`]: the four steps, idempotent and crash-safe; the local driver (`keyturn rotate`),
//!   the sweep, and [`rotation::retire::retire`], the one function that deletes or deactivates.
//! - [`status`]: what `keyturn status` shows, as one typed report.
//! - [`enroll`]: a new secret with a fresh key, or the adoption of a hand-made one.
//! - [`error`]: domain errors that name the secret, user and key and say what to do next.
//! - `fake` (feature `fake`): a stateful in-memory model of the ports for tests.
//!
//! Architecture invariant: nothing here performs I/O or knows about the AWS SDK; time comes from
//! [`ports::Clock`], so every behaviour is testable deterministically.

// Errors carry the secret, user and key ids they name, so they are large; they are built at most
// once per step, on the failure path, where a copy of a few hundred bytes costs nothing.
#![allow(clippy::result_large_err)]

pub mod audit;
pub mod config;
pub mod enroll;
pub mod error;
pub mod event;
pub mod ports;
pub mod restart;
pub mod rotation;
pub mod rules;
pub mod secret;
pub mod sink;
pub mod state;
pub mod status;
pub mod tags;
pub mod user;

#[cfg(feature = "fake")]
pub mod fake;

pub use error::RotationError;
pub use event::{RotationEvent, Step};
pub use rotation::retire::retire;
pub use rotation::{Action, Backoff, RotationSettings, Rotator, StepReport};
pub use secret::{AccessKey, SecretKey, SecretText, SecretValue, Shape};
