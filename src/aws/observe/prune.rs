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
    controller_id: &str,
    cache: &RevisionCache,
    slow: &SlowCache,
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
    let mut families: BTreeMap<String, (u32, u64)> = BTreeMap::new();
    let highest_of = |svc: &ObservedService, newest: Option<u64>| {
        let running = std::iter::once(svc.task_definition.as_str())
            .chain(svc.deployments.iter().map(|d| d.task_definition.as_str()));
        running.filter_map(revision_number).chain(newest).max().unwrap_or(0)
    };
    for (family, limit, key) in managed_families(desired, o) {
        let Some(svc) = o.services.get(&key) else { continue };
        let newest = o.newest_revisions.get(&family).cloned().flatten().and_then(|r| r.value()["revision"].as_u64());
        let highest = highest_of(svc, newest);
        if highest > u64::from(limit) + 1 {
            families.insert(family, (limit, highest));
        }
    }
    for svc in o.undeclared.services.values() {
        if let Some(f) = family_of(&svc.task_definition) {
            families.entry(f.to_string()).or_insert((0, highest_of(svc, None)));
        }
    }
    // Listed again only when the family's highest known revision moved (or after `reverify`).
    let mut stale = Vec::new();
    {
        let known = slow.families.lock().unwrap_or_else(|e| e.into_inner());
        for (family, (_, highest)) in &families {
            match known.get(family) {
                Some((h, arns, at)) if h == highest && at.elapsed() < slow.reverify => {
                    o.undeclared.families.insert(family.clone(), arns.clone());
                }
                _ => stale.push((family.clone(), *highest)),
            }
        }
    }
    let listed = bounded(stale, concurrency, |(family, highest)| {
        let aws = aws.clone();
        async move { list_active(&aws, &family).await.map(|arns| (family, highest, arns)) }
    })
    .await;
    for r in listed {
        let (family, highest, arns) = r?;
        let now = std::time::Instant::now();
        slow.families.lock().unwrap_or_else(|e| e.into_inner()).insert(family.clone(), (highest, arns.clone(), now));
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
    let ids: BTreeSet<String> = ids.into_iter().filter(|id| !o.revisions.contains_key(id)).collect();
    if !ids.is_empty() {
        running_revisions(aws, &ids, o, cache, concurrency).await?;
    }
    let in_use = in_use_revisions(o);
    let mut unknown = Vec::new();
    {
        let known = slow.registered.lock().unwrap_or_else(|e| e.into_inner());
        for (family, (limit, _)) in &families {
            for arn in candidates(&o.undeclared.families[family], &in_use, *limit) {
                match known.get(arn) {
                    Some(Some(r)) => {
                        o.undeclared.registered.insert(arn.to_string(), r.clone());
                    }
                    Some(None) => {}
                    None => unknown.push(arn.to_string()),
                }
            }
        }
    }
    // Their tags, at most this many a pass (a long history is worked through
    // over several passes instead of one long one).
    unknown.truncate(REGISTRATIONS_READ_PER_PASS);
    let read = bounded(unknown, concurrency, |arn| {
        let aws = aws.clone();
        async move { aws.describe_task_definition(&arn).await.map(|td| (arn, td)) }
    })
    .await;
    let mut known = slow.registered.lock().unwrap_or_else(|e| e.into_inner());
    for r in read {
        let (arn, td) = r?;
        let who = td.as_ref().and_then(|td| registered_by(td, controller_id));
        if let Some(w) = &who {
            o.undeclared.registered.insert(arn.clone(), w.clone());
        }
        known.insert(arn, who);
    }
    Ok(())
}

/// Revisions whose tags are read in one pass, at most.
const REGISTRATIONS_READ_PER_PASS: usize = 200;

/// What a revision's tags say, when this controller registered it.
fn registered_by(td: &Value, controller_id: &str) -> Option<RegisteredRevision> {
    let tags: Tags = td["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some((t["key"].as_str()?.to_string(), t["value"].as_str()?.to_string())))
        .collect();
    (tags.get(TAG_MANAGED_BY).map(String::as_str) == Some(controller_id)).then(|| RegisteredRevision {
        policy: crate::model::DeletionPolicy::of(&tags),
        source: tags.get(TAG_SOURCE).cloned(),
    })
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
