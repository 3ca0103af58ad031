//! Ownership, decided once for every endpoint: which of the resources an endpoint saw
//! are this deployment's and in the configured scope (ours), this deployment's but
//! somewhere else (the config moved: never acted on, refused by the planner), someone
//! else's in the way (a name we would use), or unrelated. Adapters and the simulator
//! report what they see with its tags; they do not decide.

use crate::model::{Elsewhere, Owner, Tags};
use crate::ops::AzureResourceKind;

/// The Azure scope a config names, and where a resource of ours lies outside it. Used
/// by every Azure endpoint (simulated or real) so that "elsewhere" means one thing.
/// ARM ids, resource group names and locations compare without case; locations also
/// without spaces (`West Europe` is `westeurope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AzureScope<'a> {
    pub subscription_id: &'a str,
    pub resource_group: &'a str,
    pub location: &'a str,
    pub vnet: &'a str,
}

impl AzureScope<'_> {
    /// The id prefix of the resource group, lower-cased, ending in `/`.
    pub fn prefix(&self) -> String {
        format!("/subscriptions/{}/resourceGroups/{}/", self.subscription_id, self.resource_group).to_ascii_lowercase()
    }

    /// The resource (by ARM id) is in the configured resource group.
    pub fn holds(&self, id: &str) -> bool {
        id.to_ascii_lowercase().starts_with(&self.prefix())
    }

    /// Where a resource (ARM id, location when known) lies outside this scope, in the
    /// user's words; `None` inside it.
    pub fn place_of(&self, id: &str, location: Option<&str>) -> Option<String> {
        if !self.holds(id) {
            let segment = |after: &str| {
                let lower = id.to_ascii_lowercase();
                let at = lower.find(&format!("/{after}/"))? + after.len() + 2;
                id[at..].split('/').next().map(str::to_owned)
            };
            let rg = segment("resourcegroups").unwrap_or_else(|| "another resource group".to_owned());
            let sub = segment("subscriptions").unwrap_or_default();
            return Some(if sub.eq_ignore_ascii_case(self.subscription_id) {
                format!("resource group \"{rg}\"")
            } else {
                format!("resource group \"{rg}\" of subscription {sub}")
            });
        }
        let norm = |l: &str| l.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
        location.filter(|l| norm(l) != norm(self.location)).map(|l| format!("location \"{l}\""))
    }

    /// Where a gateway whose instances sit in `subnet_ids` serves another VNet than the
    /// configured one; `None` when all of them are in the configured VNet (or unknown).
    pub fn gateway_place<'s>(&self, subnet_ids: impl IntoIterator<Item = &'s str>) -> Option<String> {
        let vnet_prefix = format!("{}providers/microsoft.network/virtualnetworks/{}/", self.prefix(), self.vnet.to_ascii_lowercase());
        let other = subnet_ids.into_iter().find(|s| !s.is_empty() && !s.to_ascii_lowercase().starts_with(&vnet_prefix))?;
        let lower = other.to_ascii_lowercase();
        let vnet = lower
            .find("/virtualnetworks/")
            .and_then(|at| other[at + "/virtualnetworks/".len()..].split('/').next())
            .unwrap_or("another VNet");
        Some(format!("VNet \"{vnet}\""))
    }
}

/// One Azure resource as an endpoint saw it, for [`AzureScope::standing`].
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub kind: AzureResourceKind,
    pub id: &'a str,
    pub name: &'a str,
    pub location: Option<&'a str>,
    pub tags: &'a Tags,
    /// For a gateway: the subnets its instances sit in (which VNet it serves).
    pub subnets: &'a [&'a str],
}

/// Where a seen resource stands for this deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// This deployment's, in the configured scope: observed, planned, acted on.
    Ours,
    /// This deployment's, outside the configured scope (where, in the user's words).
    Elsewhere(String),
    /// Someone else's, in the configured resource group: its name is taken.
    Foreign,
    /// Someone else's, elsewhere: none of our business.
    Unrelated,
}

impl AzureScope<'_> {
    /// Where `seen` stands for `owner` (the tag decides whose; the scope, where).
    pub fn standing(&self, owner: &Owner, seen: &Seen<'_>) -> Standing {
        if owner.owns(seen.tags) {
            let place = self.place_of(seen.id, seen.location).or_else(|| match seen.kind {
                AzureResourceKind::VpnGateway => self.gateway_place(seen.subnets.iter().copied()),
                _ => None,
            });
            return place.map_or(Standing::Ours, Standing::Elsewhere);
        }
        if self.holds(seen.id) { Standing::Foreign } else { Standing::Unrelated }
    }

    /// What core needs of everything seen beyond our own resources: the names of
    /// others' resources in our resource group (sorted, once each) and ours elsewhere.
    pub fn inventory<'s>(&self, owner: &Owner, seen: impl IntoIterator<Item = Seen<'s>>) -> Inventory {
        let mut inv = Inventory::default();
        for s in seen {
            match self.standing(owner, &s) {
                Standing::Foreign => inv.foreign_names.push(s.name.to_owned()),
                Standing::Elsewhere(place) => {
                    inv.elsewhere.push(Elsewhere { kind: kind_words(s.kind).to_owned(), id: s.id.to_owned(), place })
                }
                Standing::Ours | Standing::Unrelated => {}
            }
        }
        inv.foreign_names.sort();
        inv.foreign_names.dedup();
        inv
    }
}

/// Others' names in the way and ours elsewhere (see [`AzureScope::inventory`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub foreign_names: Vec<String>,
    pub elsewhere: Vec<Elsewhere>,
}

/// Of the resources seen (ARM id or EC2 id, tags), those tagged for another
/// deployment than `owner`'s: id (lower case) -> that deployment. Tells the user whose
/// resource is in the way.
pub fn other_deployments<'t>(
    owner: &Owner,
    seen: impl IntoIterator<Item = (&'t str, &'t Tags)>,
) -> std::collections::BTreeMap<String, String> {
    seen.into_iter()
        .filter_map(|(id, tags)| Some((id.to_ascii_lowercase(), tags.get(crate::model::TAG_DEPLOYMENT)?.clone())))
        .filter(|(_, d)| d != &owner.deployment)
        .collect()
}

/// A kind in the user's words.
pub fn kind_words(kind: AzureResourceKind) -> &'static str {
    match kind {
        AzureResourceKind::PublicIp => "public IP",
        AzureResourceKind::VpnGateway => "VPN gateway",
        AzureResourceKind::LocalNetworkGateway => "local network gateway",
        AzureResourceKind::Connection => "connection",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Owner;

    const SCOPE: AzureScope<'static> =
        AzureScope { subscription_id: "sub-1", resource_group: "rg-vpn", location: "japaneast", vnet: "vnet-hub" };

    #[test]
    fn arm_ids_and_locations_are_placed_without_case() {
        let id = "/subscriptions/SUB-1/resourcegroups/RG-VPN/providers/Microsoft.Network/connections/c";
        assert_eq!(SCOPE.place_of(id, Some("JapanEast")), None);
        assert_eq!(SCOPE.place_of(id, Some("Japan East")), None);
        assert_eq!(SCOPE.place_of(id, None), None);
        assert_eq!(SCOPE.place_of(id, Some("japanwest")).as_deref(), Some("location \"japanwest\""));
        let other = "/subscriptions/sub-1/resourceGroups/rg-old/providers/Microsoft.Network/connections/c";
        assert_eq!(SCOPE.place_of(other, Some("japaneast")).as_deref(), Some("resource group \"rg-old\""));
        let far = "/subscriptions/sub-2/resourceGroups/rg-vpn/providers/Microsoft.Network/connections/c";
        assert_eq!(SCOPE.place_of(far, None).as_deref(), Some("resource group \"rg-vpn\" of subscription sub-2"));
    }

    #[test]
    fn a_gateway_serving_another_vnet_is_placed_there() {
        let here = "/subscriptions/sub-1/resourceGroups/RG-VPN/providers/Microsoft.Network/virtualNetworks/Vnet-Hub/subnets/GatewaySubnet";
        let there = "/subscriptions/sub-1/resourceGroups/rg-vpn/providers/Microsoft.Network/virtualNetworks/vnet-old/subnets/GatewaySubnet";
        assert_eq!(SCOPE.gateway_place([here, here]), None);
        assert_eq!(SCOPE.gateway_place([here, there]).as_deref(), Some("VNet \"vnet-old\""));
        assert_eq!(SCOPE.gateway_place([""]), None);
    }

    #[test]
    fn standing_is_decided_by_the_tag_and_the_scope() {
        let owner = Owner::new("d");
        let ours = owner.tags(&crate::model::Role::VpnGateway);
        let theirs = Owner::new("other").tags(&crate::model::Role::VpnGateway);
        let id = "/subscriptions/sub-1/resourceGroups/rg-vpn/providers/Microsoft.Network/virtualNetworkGateways/gw";
        let old = "/subscriptions/sub-1/resourceGroups/rg-old/providers/Microsoft.Network/virtualNetworkGateways/gw";
        let subnet =
            ["/subscriptions/sub-1/resourceGroups/rg-vpn/providers/Microsoft.Network/virtualNetworks/vnet-hub/subnets/GatewaySubnet"];
        let seen =
            |id, tags| Seen { kind: AzureResourceKind::VpnGateway, id, name: "gw", location: Some("japaneast"), tags, subnets: &subnet };
        assert_eq!(SCOPE.standing(&owner, &seen(id, &ours)), Standing::Ours);
        assert_eq!(SCOPE.standing(&owner, &seen(old, &ours)), Standing::Elsewhere("resource group \"rg-old\"".into()));
        assert_eq!(SCOPE.standing(&owner, &seen(id, &theirs)), Standing::Foreign);
        assert_eq!(SCOPE.standing(&owner, &seen(old, &theirs)), Standing::Unrelated);
        let inv = SCOPE.inventory(&owner, [seen(id, &theirs), seen(id, &theirs), seen(old, &ours)]);
        assert_eq!(inv.foreign_names, vec!["gw".to_owned()]);
        assert_eq!(inv.elsewhere.len(), 1);
        assert_eq!(inv.elsewhere[0].kind, "VPN gateway");
    }
}
