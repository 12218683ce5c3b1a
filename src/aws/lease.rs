//! The run lease in DynamoDB (`run --lease dynamodb:TABLE`): one item per
//! controller id, `{lease, holder, generation, expires}`, written only with
//! conditions, so two replicas never both believe they lead. The generation
//! is the fencing token: every renewal is conditional on it.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus, Tag,
};

use super::{Aws, AwsError, classify};
use crate::model::TAG_MANAGED_BY;

/// The lease item as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseItem {
    pub holder: String,
    pub generation: u64,
    /// Epoch milliseconds after which anyone may take it.
    pub expires_ms: u64,
}

#[derive(Clone)]
pub struct LeaseTable {
    pub aws: Aws,
    pub table: String,
    /// The item's key: the controller id (replicas of one controller share it).
    pub key: String,
}

/// A write whose condition does not hold is refused with this code and
/// changes nothing (AWS: https://docs.aws.amazon.com/botocore/latest/reference/services/dynamodb/client/exceptions/ConditionalCheckFailedException.html).
/// `attribute_not_exists` on the partition key is AWS's documented way to
/// put only when no item exists (https://docs.aws.amazon.com/sdkfornet/latest/apidocs/items/TDynamoDBv2PutItemRequestNET45.html).
const CONDITION_FAILED: &[&str] = &["ConditionalCheckFailedException"];

impl LeaseTable {
    /// Creates the table (on-demand, tagged) when it is missing, and waits until it is active.
    pub async fn ensure(&self) -> Result<(), AwsError> {
        let described = self.aws.dynamodb.describe_table().table_name(&self.table).send().await;
        match described {
            Ok(d) if d.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) => return Ok(()),
            Ok(_) => {}
            Err(e) => {
                let e = classify("DescribeTable", e);
                if !e.is_code(&["ResourceNotFoundException"]) {
                    return Err(e);
                }
                let created = self
                    .aws
                    .dynamodb
                    .create_table()
                    .table_name(&self.table)
                    .billing_mode(BillingMode::PayPerRequest)
                    .attribute_definitions(
                        AttributeDefinition::builder()
                            .attribute_name("lease")
                            .attribute_type(ScalarAttributeType::S)
                            .build()
                            .map_err(|e| AwsError::other("CreateTable", e.to_string()))?,
                    )
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name("lease")
                            .key_type(KeyType::Hash)
                            .build()
                            .map_err(|e| AwsError::other("CreateTable", e.to_string()))?,
                    )
                    .tags(
                        Tag::builder()
                            .key(TAG_MANAGED_BY)
                            .value(&self.key)
                            .build()
                            .map_err(|e| AwsError::other("CreateTable", e.to_string()))?,
                    )
                    .send()
                    .await;
                match created {
                    Ok(_) => tracing::info!(table = %self.table, "Created the lease table"),
                    // Another replica created it first.
                    Err(e) => {
                        let e = classify("CreateTable", e);
                        if !e.is_code(&["ResourceInUseException"]) {
                            return Err(e);
                        }
                    }
                }
            }
        }
        // CREATING -> ACTIVE takes seconds on AWS.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let d = self
                .aws
                .dynamodb
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| classify("DescribeTable", e))?;
            if d.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(AwsError::other("DescribeTable", format!("table {} did not become ACTIVE", self.table)));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The lease as it stands (a consistent read).
    pub async fn read(&self) -> Result<Option<LeaseItem>, AwsError> {
        let out = self
            .aws
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key("lease", AttributeValue::S(self.key.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", e))?;
        let Some(item) = out.item() else { return Ok(None) };
        let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let n = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(Some(LeaseItem { holder: s("holder"), generation: n("generation"), expires_ms: n("expires") }))
    }

    /// Takes the lease as `me` with `generation`, if it is still as `seen`
    /// (absent, or that generation and expired by `now_ms`). False: someone
    /// else moved first.
    pub async fn take(
        &self,
        me: &str,
        generation: u64,
        expires_ms: u64,
        seen: Option<&LeaseItem>,
        now_ms: u64,
    ) -> Result<bool, AwsError> {
        let mut put = self
            .aws
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .item("lease", AttributeValue::S(self.key.clone()))
            .item("holder", AttributeValue::S(me.to_string()))
            .item("generation", AttributeValue::N(generation.to_string()))
            .item("expires", AttributeValue::N(expires_ms.to_string()));
        // DynamoDB refuses an expression attribute name the expression does not use.
        put = match seen {
            None => put.condition_expression("attribute_not_exists(#l)").expression_attribute_names("#l", "lease"),
            Some(s) => put
                .condition_expression("#g = :seen AND #e < :now")
                .expression_attribute_names("#g", "generation")
                .expression_attribute_names("#e", "expires")
                .expression_attribute_values(":seen", AttributeValue::N(s.generation.to_string()))
                .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string())),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = classify("PutItem", e);
                if e.is_code(CONDITION_FAILED) { Ok(false) } else { Err(e) }
            }
        }
    }

    /// Extends the lease to `expires_ms` if `me` still holds `generation`.
    /// False: the lease moved on (another replica leads now).
    pub async fn renew(&self, me: &str, generation: u64, expires_ms: u64) -> Result<bool, AwsError> {
        let out = self
            .aws
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key("lease", AttributeValue::S(self.key.clone()))
            .update_expression("SET #e = :exp")
            .condition_expression("#h = :me AND #g = :gen")
            .expression_attribute_names("#e", "expires")
            .expression_attribute_names("#h", "holder")
            .expression_attribute_names("#g", "generation")
            .expression_attribute_values(":exp", AttributeValue::N(expires_ms.to_string()))
            .expression_attribute_values(":me", AttributeValue::S(me.to_string()))
            .expression_attribute_values(":gen", AttributeValue::N(generation.to_string()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = classify("UpdateItem", e);
                if e.is_code(CONDITION_FAILED) { Ok(false) } else { Err(e) }
            }
        }
    }
}
