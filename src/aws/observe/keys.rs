//! KMS keys behind declared and referenced values: one DescribeKey per
//! distinct key id, remembered for `--reverify-interval`.

use super::*;

pub(super) async fn keys(
    aws: &Aws,
    desired: &Desired,
    o: &Observed,
    slow: &SlowCache,
    concurrency: usize,
) -> Result<BTreeMap<String, KmsKey>, AwsError> {
    let mut ids: BTreeSet<String> = BTreeSet::new();
    ids.extend(desired.parameters.values().filter_map(|p| p.kms_key_id.clone()));
    ids.extend(desired.secrets.values().filter_map(|s| s.kms_key_id.clone()));
    ids.extend(o.parameters.values().filter_map(|p| p.key_id.clone()));
    ids.extend(o.secrets.values().filter_map(|s| s.kms_key_id.clone()));
    let mut keys = BTreeMap::new();
    let mut lookups = Vec::new();
    for id in ids {
        // `alias/aws/*` names are reserved for AWS managed keys.
        if id.starts_with("alias/aws/") {
            keys.insert(id, KmsKey { arn: String::new(), customer_managed: false });
        } else {
            lookups.push(id);
        }
    }
    let (fresh, stale) = slow.split(&slow.keys, lookups);
    keys.extend(fresh);
    let lookups: Vec<String> = stale.iter().cloned().collect();

    let described = bounded(lookups, concurrency, |id| {
        let kms = aws.kms.clone();
        async move {
            match kms.describe_key().key_id(&id).send().await {
                Ok(out) => {
                    let Some(meta) = out.key_metadata() else { return Ok(None) };
                    let customer = meta.key_manager().is_none_or(|m| m.as_str() == "CUSTOMER");
                    Ok(Some((
                        id,
                        KmsKey { arn: meta.arn().unwrap_or_default().to_string(), customer_managed: customer },
                    )))
                }
                Err(e) => {
                    let e = classify("DescribeKey", e);
                    if e.is_code(&["NotFoundException"]) { Ok(None) } else { Err(e) }
                }
            }
        }
    })
    .await;
    let mut found = BTreeMap::new();
    for r in described {
        if let Some((id, k)) = r? {
            found.insert(id, k);
        }
    }
    SlowCache::store(&slow.keys, &stale, &mut found);
    keys.extend(found);
    Ok(keys)
}
