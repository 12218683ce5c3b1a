//! What prune reads after the services are applied: the ECS services the
//! undeclared roles name, the ACTIVE revisions of families that may hold more
//! than their history limit, and the revisions deployments run (cached: a
//! revision never changes) so that nothing still used is deleted.

use super::*;
use crate::plan::prune::{candidates, family_of, in_use_revisions, managed_families, revision_number, service_of};

/// Reads what prune decides on; see the module doc.
pub async fn prune_reads(
    aws: &Aws,
    desired: &Desired,
    o: &mut Observed,
    cache: &RevisionCache,
    concurrency: usize,
) -> Result<(), AwsError> {
    // The ECS services of removed Services, named by their roles.
    let named: BTreeSet<(String, String)> =
        o.undeclared.roles.iter().filter_map(|r| service_of(r)).filter(|k| !o.services.contains_key(k)).collect();
    if !named.is_empty() {
        o.undeclared.services = describe_services(aws, named.iter().map(|(c, s)| (c.as_str(), s.as_str()))).await?;
    }
    // Families that may hold more revisions than they keep: the highest
    // revision number known (running, deployed or newest read) is above the limit + 1.
    let mut families: BTreeMap<String, u32> = BTreeMap::new();
    for (family, limit, key) in managed_families(desired, o) {
        let Some(svc) = o.services.get(&key) else { continue };
        let newest = o.newest_revisions.get(&family).cloned().flatten().and_then(|r| r.value()["revision"].as_u64());
        let running = std::iter::once(svc.task_definition.as_str())
            .chain(svc.deployments.iter().map(|d| d.task_definition.as_str()));
        let highest = running.filter_map(revision_number).chain(newest).max();
        if highest.is_some_and(|h| h > u64::from(limit) + 1) {
            families.insert(family, limit);
        }
    }
    for svc in o.undeclared.services.values() {
        if let Some(f) = family_of(&svc.task_definition) {
            families.entry(f.to_string()).or_insert(0);
        }
    }
    let listed = bounded(families.keys().cloned().collect(), concurrency, |family| {
        let aws = aws.clone();
        async move { list_active(&aws, &family).await.map(|arns| (family, arns)) }
    })
    .await;
    for r in listed {
        let (family, arns) = r?;
        o.undeclared.families.insert(family, arns);
    }
    // Revisions to read: what deployments run (when anything undeclared may
    // be used by one), and the candidates for deregistration (for their tags).
    let mut ids = BTreeSet::new();
    let anything_undeclared =
        !o.undeclared.parameters.is_empty() || !o.undeclared.secrets.is_empty() || !o.undeclared.roles.is_empty();
    if anything_undeclared {
        for svc in o.services.values().chain(o.undeclared.services.values()) {
            ids.extend(svc.deployments.iter().map(|d| d.task_definition.clone()));
            ids.insert(svc.task_definition.clone());
        }
    }
    for (family, limit) in &families {
        let in_use = in_use_revisions(o);
        let arns = &o.undeclared.families[family];
        ids.extend(candidates(arns, &in_use, *limit).into_iter().map(str::to_string));
    }
    let ids: BTreeSet<String> = ids.into_iter().filter(|id| !o.revisions.contains_key(id)).collect();
    if !ids.is_empty() {
        running_revisions(aws, &ids, o, cache, concurrency).await?;
    }
    Ok(())
}

/// ListTaskDefinitions for one family (ACTIVE, oldest first); the prefix
/// filter also matches longer family names, so only exact ones are kept.
async fn list_active(aws: &Aws, family: &str) -> Result<Vec<String>, AwsError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = aws
            .ecs
            .list_task_definitions()
            .family_prefix(family)
            .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
            .sort(aws_sdk_ecs::types::SortOrder::Asc)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| classify("ListTaskDefinitions", e))?;
        out.extend(page.task_definition_arns().iter().filter(|a| family_of(a) == Some(family)).cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    out.sort_by_key(|a| revision_number(a));
    Ok(out)
}
