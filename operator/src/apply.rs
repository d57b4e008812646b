//! Server-side apply of owned objects, always under the one field manager.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::naming::MANAGER;

/// Apply parameters: our field manager, forcing ownership of the fields we set (we
/// are the only writer of these objects; a conflict would mean someone edited them
/// by hand, and the spec wins).
pub fn apply_params() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

/// Parameters of non-apply patches (status, labels), attributed to the same manager.
pub fn patch_params() -> PatchParams {
    PatchParams { field_manager: Some(MANAGER.into()), ..PatchParams::default() }
}

/// Server-side applies `obj` (which must carry its name) through `api`.
pub async fn apply<K>(api: &Api<K>, obj: &K) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(&name, &apply_params(), &Patch::Apply(obj)).await
}

/// The [`ApiResource`] of `group/version` `kind` with plural `plural`.
pub fn api_resource(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// Server-side applies a JSON object whose type is known only at run time.
pub async fn apply_dynamic(
    client: kube::Client,
    namespace: &str,
    resource: &ApiResource,
    name: &str,
    obj: &serde_json::Value,
) -> Result<DynamicObject, kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client, namespace, resource);
    api.patch(name, &apply_params(), &Patch::Apply(obj)).await
}

/// Deletes `name`, treating "already gone" as success.
pub async fn delete_ignore_missing<K>(api: &Api<K>, name: &str) -> Result<bool, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &Default::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}
