//! secretwire keeps the secret wiring of Amazon ECS services true to a GitOps
//! repository of YAML manifests.
//!
//! ```text
//! manifests --load+validate--> Desired --+
//!                                        +--plan (pure)--> Plan --execute--> AWS
//! AWS --observe (batched reads)--> Observed
//! ```

pub mod arn;
pub mod aws;
pub mod cli;
pub mod events;
pub mod fleet;
pub mod follow;
pub mod glob;
pub mod http_get;
pub mod init;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod observed;
pub mod output;
pub mod plan;
pub mod policy;
pub mod reason;
pub mod reconcile;
pub mod rollout;
pub mod run;
pub mod sar;
pub mod statusview;
pub mod stdout;
pub mod taskdef;
pub mod value;
