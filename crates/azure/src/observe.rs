//! Observing: one list per kind (subscription-wide, `nextLink` followed), the VNet,
//! and per Connection of ours its key and a GET; then core's ownership rules place
//! every resource (ours, someone else's, ours elsewhere).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::IpNet;
use vpnbridge_core::endpoint::{EndpointError, ErrorKind};
use vpnbridge_core::model::{
    AzureObserved, AzureScope, AzureTunnelStatus, BgpPeeringAddress, Connection, CustomBgpAddress, GatewayIpConfiguration, LngBgp,
    LocalNetworkGateway, Owner, ProvisioningState, PublicIp, Subnet, VirtualNetwork, VirtualNetworkGateway,
};
use vpnbridge_core::ops::AzureResourceKind;
use vpnbridge_core::ownership::{Inventory, Seen, Standing};
use vpnbridge_core::secret::Psk;

use crate::arm::{API_VERSION, Raw, RawCall, call_arm};
use crate::handle::Kind;
use crate::{AzureEndpoint, tunnels, wire};

pub(crate) fn state_of(s: Option<&str>) -> ProvisioningState {
    match s {
        Some("Succeeded") | None => ProvisioningState::Succeeded,
        Some("Deleting") => ProvisioningState::Deleting,
        Some("Failed") | Some("Canceled") => ProvisioningState::Failed,
        Some(_) => ProvisioningState::Updating,
    }
}

pub(crate) fn not_found_or(e: EndpointError) -> Result<Option<Raw>, EndpointError> {
    if e.kind == ErrorKind::NotFound { Ok(None) } else { Err(e) }
}

/// Everything one observation read, as ARM returned it.
pub(crate) struct Snapshot {
    pub(crate) vnet: Option<wire::Vnet>,
    pub(crate) public_ips: Vec<wire::PublicIp>,
    pub(crate) gateways: Vec<wire::Gateway>,
    pub(crate) lngs: Vec<wire::Lng>,
    pub(crate) connections: Vec<wire::Connection>,
    /// Shared keys of our Connections, by lower-cased id.
    pub(crate) keys: HashMap<String, Option<Psk>>,
}

impl AzureEndpoint {
    /// Every resource of `kind` in the subscription (ours are found wherever their tag
    /// is: a changed resource group or location must not hide them). A role assigned
    /// only on the resource group cannot list the subscription (`AuthorizationFailed`):
    /// then the resource group is listed, with a warning (once) that resources of ours
    /// elsewhere cannot be seen.
    pub(crate) async fn list<T: serde::de::DeserializeOwned>(&self, kind: Kind) -> Result<Vec<T>, EndpointError> {
        if !self.group_only.load(std::sync::atomic::Ordering::Relaxed) {
            let url = self.arm.subscription_collection_url(&self.subscription, kind.collection());
            match self.list_from(kind, url).await {
                Err(e) if e.code == "AuthorizationFailed" => {
                    if !self.group_only.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        tracing::warn!(
                            subscription = %self.subscription,
                            "cannot list the subscription ({}); looking in resource group {} only, so resources of this deployment in another resource group or location are not seen. Assign the vpnbridge role (or Reader) at the subscription scope to search it",
                            e.code,
                            self.resource_group
                        );
                    }
                }
                other => return other,
            }
        }
        self.list_from(kind, self.arm.collection_url(&self.subscription, &self.resource_group, kind.collection())).await
    }

    /// When no gateway of this deployment is in the configured subscription: the
    /// gateways of ours in the other subscriptions the identity can see (the config's
    /// subscription changed). One `GET /subscriptions`, then one gateway list per other
    /// subscription, a few at a time; a subscription that cannot be read is skipped.
    pub(crate) async fn gateways_in_other_subscriptions(&self, owner: &Owner) -> Result<Vec<wire::Gateway>, EndpointError> {
        use futures::StreamExt;
        let mut subscriptions = Vec::new();
        let mut url = self.arm.subscriptions_url();
        loop {
            let page: wire::List<wire::Subscription> = match self.arm.get(RawCall::Subscriptions, &url).await {
                Ok(r) => r.json("the subscription list")?,
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot list subscriptions; not searching other subscriptions");
                    return Ok(Vec::new());
                }
            };
            subscriptions.extend(page.value.into_iter().map(|s| s.subscription_id));
            match page.next_link {
                Some(next) if !next.is_empty() => url = next,
                _ => break,
            }
        }
        subscriptions.retain(|s| !s.eq_ignore_ascii_case(&self.subscription));
        let lists = futures::stream::iter(subscriptions)
            .map(|s| async move {
                let url = self.arm.subscription_collection_url(&s, Kind::VpnGateway.collection());
                match self.list_from::<wire::Gateway>(Kind::VpnGateway, url).await {
                    Err(e) if e.is_transient() => Err(e),
                    Err(e) => {
                        tracing::debug!(subscription = %s, error = %e, "cannot list this subscription's gateways; skipped");
                        Ok(Vec::new())
                    }
                    Ok(v) => Ok(v),
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        let mut out = Vec::new();
        for l in lists {
            out.extend(l?.into_iter().filter(|g| owner.owns(&g.tags)));
        }
        Ok(out)
    }

    pub(crate) async fn list_from<T: serde::de::DeserializeOwned>(&self, kind: Kind, mut url: String) -> Result<Vec<T>, EndpointError> {
        let mut out = Vec::new();
        loop {
            let page: wire::List<T> = self.arm.get(RawCall::List(kind), &url).await?.json(kind.collection())?;
            out.extend(page.value);
            match page.next_link {
                Some(next) if !next.is_empty() => url = next,
                _ => return Ok(out),
            }
        }
    }

    pub(crate) async fn get_vnet(&self) -> Result<Option<wire::Vnet>, EndpointError> {
        let c = &self.arm.client;
        let r = match call_arm(false, c.virtual_networks_client().get(&self.resource_group, &self.vnet, &self.subscription).send()).await {
            Ok(r) => r,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Raw::read(r.into_raw_response()).await?.json("the VNet").map(Some)
    }

    pub(crate) async fn shared_key(&self, name: &str) -> Result<Option<Psk>, EndpointError> {
        let c = &self.arm.client;
        let r = match call_arm(
            false,
            c.virtual_network_gateway_connections_client().get_shared_key(&self.resource_group, name, &self.subscription).send(),
        )
        .await
        {
            Ok(r) => r,
            Err(e) if e.is_transient() => return Err(e),
            // Not readable (gone meanwhile, not allowed): reported as unknown.
            Err(_) => return Ok(None),
        };
        let k: wire::SharedKey = Raw::read(r.into_raw_response()).await?.json("the shared key")?;
        Ok(Psk::new(&k.value).ok())
    }

    /// GET one Connection: its runtime fields (`connectionStatus`,
    /// `tunnelConnectionStatus`), which ARM's list leaves out. `None`: gone meanwhile.
    pub(crate) async fn get_connection(&self, name: &str) -> Result<Option<wire::Connection>, EndpointError> {
        let path = format!("{}?api-version={API_VERSION}", self.kind_id(Kind::Connection, name));
        match self.arm.get(RawCall::Get(Kind::Connection), &path).await.map(Some).or_else(not_found_or)? {
            Some(raw) => raw.json("a Connection").map(Some),
            None => Ok(None),
        }
    }

    pub(crate) async fn snapshot(&self, owner: &Owner) -> Result<Snapshot, EndpointError> {
        let (vnet, public_ips, mut gateways, lngs, listed) = tokio::try_join!(
            self.get_vnet(),
            self.list::<wire::PublicIp>(Kind::PublicIp),
            self.list::<wire::Gateway>(Kind::VpnGateway),
            self.list::<wire::Lng>(Kind::LocalNetworkGateway),
            self.list::<wire::Connection>(Kind::Connection),
        )?;
        if !gateways.iter().any(|g| owner.owns(&g.tags)) {
            gateways.extend(self.gateways_in_other_subscriptions(owner).await?);
        }
        // Per Connection of ours, at once: its `sharedkey` and a GET of it (the list
        // has no runtime fields). Errors keep their kind (a 429 stays Throttled).
        let scope = self.scope();
        let (ours, mut connections): (Vec<wire::Connection>, Vec<wire::Connection>) =
            listed.into_iter().partition(|c| owner.owns(&c.tags) && scope.place_of(&c.id, c.location.as_deref()).is_none());
        let reads = ours.iter().map(|c| async move { tokio::try_join!(self.shared_key(&c.name), self.get_connection(&c.name)) });
        let read = futures::future::try_join_all(reads).await?;
        let mut keys: HashMap<String, Option<Psk>> = HashMap::new();
        for (listed, (key, got)) in ours.into_iter().zip(read) {
            // A Connection deleted since the list is gone.
            let Some(got) = got else { continue };
            keys.insert(got.id.to_ascii_lowercase(), key);
            connections.push(if same_id(&got.id, &listed.id) { got } else { listed });
        }
        Ok(Snapshot { vnet, public_ips, gateways, lngs, connections, keys })
    }
}

pub(crate) fn same_id(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl Snapshot {
    /// Everything listed, as core's ownership rules read it.
    pub(crate) fn with_seen<R>(&self, f: impl FnOnce(&[Seen<'_>]) -> R) -> R {
        let none: &[&str] = &[];
        let gateway_subnets: Vec<Vec<&str>> = self.gateways.iter().map(|g| Self::subnets_of(g).collect()).collect();
        let mut seen = Vec::new();
        fn at(l: &Option<String>) -> Option<&str> {
            l.as_deref()
        }
        for p in &self.public_ips {
            seen.push(Seen {
                kind: AzureResourceKind::PublicIp,
                id: &p.id,
                name: &p.name,
                location: at(&p.location),
                tags: &p.tags,
                subnets: none,
            });
        }
        for (g, subnets) in self.gateways.iter().zip(&gateway_subnets) {
            seen.push(Seen {
                kind: AzureResourceKind::VpnGateway,
                id: &g.id,
                name: &g.name,
                location: at(&g.location),
                tags: &g.tags,
                subnets,
            });
        }
        for l in &self.lngs {
            seen.push(Seen {
                kind: AzureResourceKind::LocalNetworkGateway,
                id: &l.id,
                name: &l.name,
                location: at(&l.location),
                tags: &l.tags,
                subnets: none,
            });
        }
        for c in &self.connections {
            seen.push(Seen {
                kind: AzureResourceKind::Connection,
                id: &c.id,
                name: &c.name,
                location: at(&c.location),
                tags: &c.tags,
                subnets: none,
            });
        }
        f(&seen)
    }

    /// Whether a resource (by id) is ours and in the configured scope, as core decides
    /// (resource group, location and, for the gateway, the VNet it serves).
    pub(crate) fn ours(&self, scope: AzureScope<'_>, owner: &Owner) -> impl Fn(&str) -> bool + use<> {
        let ids: std::collections::HashSet<String> = self.with_seen(|seen| {
            seen.iter().filter(|s| scope.standing(owner, s) == Standing::Ours).map(|s| s.id.to_ascii_lowercase()).collect()
        });
        move |id: &str| ids.contains(&id.to_ascii_lowercase())
    }

    /// Our gateway: ours, in scope and serving the configured VNet.
    pub(crate) fn our_gateway<'s>(&'s self, scope: AzureScope<'_>, owner: &Owner) -> Option<&'s wire::Gateway> {
        let ours = self.ours(scope, owner);
        self.gateways.iter().find(|g| ours(&g.id))
    }

    pub(crate) fn subnets_of(g: &wire::Gateway) -> impl Iterator<Item = &str> {
        g.properties.ip_configurations.iter().filter_map(|c| c.properties.subnet.as_ref().map(|r| r.id.as_str()))
    }

    /// Our gateway's instances: (index, public IP).
    pub(crate) fn instances(&self, gw: Option<&wire::Gateway>) -> Vec<(usize, Option<Ipv4Addr>)> {
        let Some(gw) = gw else { return Vec::new() };
        gw.properties
            .ip_configurations
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let pip_id = c.properties.public_ip_address.as_ref().map(|r| r.id.as_str()).unwrap_or_default();
                let ip = self
                    .public_ips
                    .iter()
                    .find(|p| same_id(&p.id, pip_id))
                    .and_then(|p| p.properties.ip_address.as_deref())
                    .and_then(|s| s.parse().ok());
                (k, ip)
            })
            .collect()
    }

    pub(crate) fn observed(&self, scope: AzureScope<'_>, owner: &Owner) -> AzureObserved {
        let ours = self.ours(scope, owner);
        let vnet = self.vnet.as_ref().map(|v| VirtualNetwork {
            id: v.id.clone(),
            name: v.name.clone(),
            address_space: v
                .properties
                .address_space
                .as_ref()
                .map(|a| a.address_prefixes.iter().filter_map(|p| p.parse::<IpNet>().ok()).collect())
                .unwrap_or_default(),
            subnets: v
                .properties
                .subnets
                .iter()
                .filter_map(|s| {
                    let prefix = s.properties.address_prefix.as_ref().or(s.properties.address_prefixes.first())?.parse().ok()?;
                    Some(Subnet {
                        id: s.id.clone(),
                        name: s.name.clone(),
                        prefix,
                        ip_configurations: s.properties.ip_configurations.iter().map(|r| r.id.clone()).collect(),
                    })
                })
                .collect(),
        });
        let public_ips = self
            .public_ips
            .iter()
            .filter(|p| ours(&p.id))
            .map(|p| PublicIp {
                id: p.id.clone(),
                name: p.name.clone(),
                ip: p.properties.ip_address.as_deref().and_then(|s| s.parse().ok()),
                sku: p.sku.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
                static_allocation: p.properties.allocation.as_deref() == Some("Static"),
                zones: p.zones.clone(),
                state: state_of(p.properties.provisioning_state.as_deref()),
                tags: p.tags.clone(),
            })
            .collect();
        let our_gw = self.our_gateway(scope, owner);
        let vpn_gateway = our_gw.map(|g| VirtualNetworkGateway {
            id: g.id.clone(),
            name: g.name.clone(),
            sku: g.properties.sku.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
            generation: g.properties.vpn_gateway_generation.clone().unwrap_or_default(),
            vpn_type: g.properties.vpn_type.clone().unwrap_or_default(),
            active_active: g.properties.active_active,
            enable_bgp: g.properties.enable_bgp,
            asn: if g.properties.enable_bgp {
                g.properties.bgp_settings.as_ref().and_then(|b| b.asn).and_then(|a| u32::try_from(a).ok())
            } else {
                None
            },
            ip_configurations: g
                .properties
                .ip_configurations
                .iter()
                .map(|c| GatewayIpConfiguration {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    public_ip_id: c.properties.public_ip_address.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
                })
                .collect(),
            bgp_peering_addresses: g
                .properties
                .bgp_settings
                .iter()
                .flat_map(|b| &b.bgp_peering_addresses)
                .map(|p| BgpPeeringAddress {
                    ip_configuration_id: p.ipconfiguration_id.clone().unwrap_or_default(),
                    custom: p.custom_bgp_ip_addresses.iter().filter_map(|a| a.parse().ok()).collect(),
                    default: p.default_bgp_ip_addresses.iter().filter_map(|a| a.parse().ok()).collect(),
                })
                .collect(),
            state: state_of(g.properties.provisioning_state.as_deref()),
            tags: g.tags.clone(),
        });
        // Gateways of others in our GatewaySubnet: the subnet's ipConfigurations that
        // are not our gateway's (they may live in another resource group).
        let mut foreign_gateways_in_vnet: Vec<String> = vnet
            .as_ref()
            .and_then(|v| v.gateway_subnet())
            .map(|s| {
                s.ip_configurations
                    .iter()
                    .filter_map(|c| {
                        let lower = c.to_ascii_lowercase();
                        let at = lower.find("/ipconfigurations/")?;
                        Some(c[..at].to_owned())
                    })
                    .filter(|g| our_gw.is_none_or(|o| !same_id(&o.id, g)))
                    .collect()
            })
            .unwrap_or_default();
        foreign_gateways_in_vnet.sort();
        foreign_gateways_in_vnet.dedup();
        let local_network_gateways = self
            .lngs
            .iter()
            .filter(|l| ours(&l.id))
            .map(|l| LocalNetworkGateway {
                id: l.id.clone(),
                name: l.name.clone(),
                gateway_ip: l.properties.gateway_ip_address.as_deref().and_then(|s| s.parse().ok()).unwrap_or(Ipv4Addr::UNSPECIFIED),
                address_prefixes: l
                    .properties
                    .local_network_address_space
                    .as_ref()
                    .map(|a| a.address_prefixes.iter().filter_map(|p| p.parse().ok()).collect())
                    .unwrap_or_default(),
                bgp: l.properties.bgp_settings.as_ref().and_then(|b| {
                    Some(LngBgp { asn: u32::try_from(b.asn?).ok()?, peering_address: b.bgp_peering_address.as_deref()?.parse().ok()? })
                }),
                state: state_of(l.properties.provisioning_state.as_deref()),
                tags: l.tags.clone(),
            })
            .collect();
        let instance_ips: Vec<Ipv4Addr> = self.instances(our_gw).into_iter().filter_map(|(_, ip)| ip).collect();
        let connections = self
            .connections
            .iter()
            .filter(|c| ours(&c.id))
            .map(|c| Connection {
                id: c.id.clone(),
                name: c.name.clone(),
                gateway_id: c.properties.virtual_network_gateway1.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
                local_network_gateway_id: c.properties.local_network_gateway2.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
                protocol: c.properties.connection_protocol.clone().unwrap_or_else(|| "IKEv2".to_owned()),
                shared_key: self.keys.get(&c.id.to_ascii_lowercase()).cloned().flatten(),
                enable_bgp: c.properties.enable_bgp,
                custom_bgp_addresses: c
                    .properties
                    .gateway_custom_bgp_ip_addresses
                    .iter()
                    .filter_map(|a| {
                        Some(CustomBgpAddress {
                            ip_configuration_id: a.ip_configuration_id.clone(),
                            address: a.custom_bgp_ip_address.parse().ok()?,
                        })
                    })
                    .collect(),
                state: state_of(c.properties.provisioning_state.as_deref()),
                connection_status: c.properties.connection_status.clone().unwrap_or_else(|| "Unknown".to_owned()),
                tunnels: c
                    .properties
                    .tunnel_connection_status
                    .iter()
                    .map(|t| AzureTunnelStatus {
                        tunnel: t.tunnel.clone(),
                        // Only when the name says (ARM documents no format): the IKE
                        // SAs that attribute the rest are read by `tunnel_ends`.
                        instance_ip: tunnels::ip_in_name(&t.tunnel, &instance_ips),
                        status: tunnels::tunnel_state(t.connection_status.as_deref()),
                    })
                    .collect(),
                tags: c.tags.clone(),
            })
            .collect();
        let Inventory { foreign_names, elsewhere } = self.with_seen(|seen| scope.inventory(owner, seen.iter().copied()));
        let deployment_of = vpnbridge_core::ownership::other_deployments(owner, self.gateways.iter().map(|g| (g.id.as_str(), &g.tags)));
        AzureObserved {
            vnet,
            foreign_gateways_in_vnet,
            public_ips,
            vpn_gateway,
            local_network_gateways,
            connections,
            foreign_names,
            elsewhere,
            deployment_of,
        }
    }
}
