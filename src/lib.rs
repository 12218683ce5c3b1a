//! secretwire keeps the secret wiring of Amazon ECS services true to a GitOps
//! repository of YAML manifests.
//!
//! ```text
//! manifests --load+validate--> Desired --+
//!                                        +--plan (pure)--> Plan --execute--> AWS
//! AWS --observe (batched reads)--> Observed
//! ```

pub mod arn;
pub mod manifest;
pub mod model;
pub mod policy;
pub mod taskdef;
pub mod value;
