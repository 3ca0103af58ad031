//! [`SimCloud`]: the shared, persisted world behind both simulated endpoints, and its
//! virtual clock.

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};
use vpnbridge_core::model::{AttachmentState, AwsState, ProvisioningState, Tags};

use crate::latency::{LatencyTable, ms};
use crate::world::{
    AwsAttachment, AwsCgw, AwsRoute, AwsRouteTable, AwsVgw, AwsVpc, AzGateway, AzIpConfig, AzLng, AzPublicIp, AzSubnet, AzVnet, Phase,
    World, arm_id,
};

/// Why the simulator could not load or save its world.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot read the simulated world {path}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Not a world this version can read (not JSON, or not its shape).
    #[error("the simulated world {} is not valid: {detail}; {}", path.display(), start_over(path))]
    Parse { path: PathBuf, detail: String },
    /// Readable, but holding values the simulator cannot work with (times or counters
    /// that would overflow, resources filed under another id): see [`World::check`].
    #[error("the simulated world {} is not valid: {}; {}", path.display(), problems.join("; "), start_over(path))]
    Invalid { path: PathBuf, problems: Vec<String> },
    /// `path` is the file being written (the temporary file, or the world itself).
    #[error("cannot write the simulated world: {what} {}", path.display())]
    Write { path: PathBuf, what: &'static str, source: std::io::Error },
    /// A change was made to a world opened with [`SimCloud::open_read_only`].
    #[error("the simulated world {} was opened read-only, and a change was made to it", path.display())]
    ReadOnly { path: PathBuf },
    #[error("cannot seed the simulated world: {0}")]
    Seed(String),
}

/// What to do about a world file that cannot be used.
fn start_over(world: &Path) -> String {
    let dir = world.parent().unwrap_or(Path::new("."));
    format!(
        "it is the simulator's own state, not a file to edit: delete {} to start over (the simulated clouds in it are lost; real clouds are not affected)",
        dir.display()
    )
}

/// The user's Azure VNet, which vpnbridge builds in but never creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VnetSpec {
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    pub name: String,
    pub address_space: Vec<Ipv4Net>,
    /// Prefix of the subnet named `GatewaySubnet`.
    pub gateway_subnet: Ipv4Net,
}

/// The user's AWS VPC, which vpnbridge builds in but never creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcSpec {
    pub region: String,
    pub vpc_id: String,
    pub cidrs: Vec<Ipv4Net>,
}

/// Both simulated clouds in one world, shared by every [`crate::SimAws`] and
/// [`crate::SimAzure`] made from it (clones share the world).
///
/// Virtual time: the world's clock reads the clock at load plus the time elapsed on
/// tokio's clock since then, so under a paused runtime (`start_paused`) a 45-minute
/// gateway build takes no wall time.
#[derive(Debug, Clone)]
pub struct SimCloud {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    world: Mutex<World>,
    /// tokio time at load.
    anchor: tokio::time::Instant,
    /// World time at load.
    base_ms: u64,
    /// `dir/world.json`, when persisted.
    path: Option<PathBuf>,
    /// Opened with [`SimCloud::open_read_only`]: nothing is ever written.
    read_only: bool,
}

const WORLD_FILE: &str = "world.json";

impl SimCloud {
    /// Opened read-only: nothing is ever written.
    pub(crate) fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// An empty world that lives in memory only (tests).
    pub fn in_memory() -> Self {
        Self::in_memory_with(LatencyTable::default())
    }

    /// An empty in-memory world with the given latencies.
    pub fn in_memory_with(latency: LatencyTable) -> Self {
        Self::from_world(World::new(latency), None, false)
    }

    /// The world persisted in `dir/world.json`, or an empty one (saved there).
    pub fn open(dir: &Path) -> Result<Self, SimError> {
        Self::open_with(dir, LatencyTable::default())
    }

    /// Like [`SimCloud::open`], with the given latencies (they are not persisted).
    ///
    /// The world file is input like any other: one that is not valid JSON of the
    /// world's shape, or that holds values the simulator cannot work with
    /// ([`World::check`]), is refused with what to do.
    pub fn open_with(dir: &Path, latency: LatencyTable) -> Result<Self, SimError> {
        let (world, path) = Self::load(dir, latency)?;
        Ok(Self::from_world(world, Some(path), false))
    }

    /// Like [`SimCloud::open_with`], for commands that change nothing: the world file
    /// is read (an absent one is an empty world) and never written, not even the
    /// directory it would live in. A change made anyway fails with
    /// [`SimError::ReadOnly`] on save instead of being persisted.
    pub fn open_read_only(dir: &Path, latency: LatencyTable) -> Result<Self, SimError> {
        let (world, path) = Self::load(dir, latency)?;
        Ok(Self::from_world(world, Some(path), true))
    }

    fn load(dir: &Path, latency: LatencyTable) -> Result<(World, PathBuf), SimError> {
        let path = dir.join(WORLD_FILE);
        let mut world = match fs::read(&path) {
            Ok(bytes) => World::from_file(&bytes).map_err(|e| match e {
                crate::world::WorldFileError::Json(detail) => SimError::Parse { path: path.clone(), detail },
                crate::world::WorldFileError::Invalid(problems) => SimError::Invalid { path: path.clone(), problems },
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => World::default(),
            Err(source) => return Err(SimError::Read { path, source }),
        };
        world.set_latency(latency);
        Ok((world, path))
    }

    fn from_world(world: World, path: Option<PathBuf>, read_only: bool) -> Self {
        let base_ms = world.now_ms;
        Self { inner: Arc::new(Inner { world: Mutex::new(world), anchor: tokio::time::Instant::now(), base_ms, path, read_only }) }
    }

    /// The virtual time now, since the simulator's epoch.
    pub fn now(&self) -> Duration {
        Duration::from_millis(self.lock().now_ms)
    }

    /// The world, with its clock moved to now and every due transition settled.
    pub(crate) fn lock(&self) -> MutexGuard<'_, World> {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.inner.anchor);
        let now = self.inner.base_ms.saturating_add(ms(elapsed));
        // A panic while holding the lock leaves the world as it was; keep going.
        let mut w = self.inner.world.lock().unwrap_or_else(|p| p.into_inner());
        w.advance_to(now);
        w
    }

    /// Reads the world (clock moved to now).
    pub fn with_world<R>(&self, f: impl FnOnce(&World) -> R) -> R {
        f(&self.lock())
    }

    /// Changes the world directly (fault injection in tests); not a cloud call, not
    /// saved until the next save.
    pub fn with_world_mut<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.lock())
    }

    /// Mutating calls received so far: (AWS, Azure), failed ones included.
    pub fn mutating_calls(&self) -> (u64, u64) {
        let w = self.lock();
        (w.aws.mutating_calls, w.azure.mutating_calls)
    }

    /// Writes the world to its file (tmp + rename, mode 0600); no-op in memory.
    pub fn save(&self) -> Result<(), SimError> {
        let w = self.lock();
        self.save_locked(&w)
    }

    pub(crate) fn save_locked(&self, w: &World) -> Result<(), SimError> {
        let Some(path) = &self.inner.path else { return Ok(()) };
        if self.inner.read_only {
            return Err(SimError::ReadOnly { path: path.clone() });
        }
        let tmp = path.with_extension("json.tmp");
        let err = |what: &'static str, at: &Path| {
            let path = at.to_owned();
            move |source| SimError::Write { path, what, source }
        };
        let json = serde_json::to_vec_pretty(w).map_err(|e| err("serialising", path)(std::io::Error::other(e)))?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(err("creating the directory of", path))?;
        }
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(err("creating", &tmp))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(fs::Permissions::from_mode(0o600)).map_err(err("setting the permissions of", &tmp))?;
        }
        f.write_all(&json).map_err(err("writing", &tmp))?;
        f.sync_all().map_err(err("syncing", &tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(err("renaming the new world over", path))
    }

    /// Leaves the Azure resource with ARM id `id` in provisioning state Failed, as an
    /// operation that ended Failed does. Returns whether such a resource exists.
    pub fn fail_azure_resource(&self, id: &str) -> bool {
        use vpnbridge_core::model::ProvisioningState::Failed;
        let mut w = self.lock();
        let now = w.now_ms;
        let a = &mut w.azure;
        let phase = if let Some(r) = a.public_ips.get_mut(id) {
            &mut r.phase
        } else if let Some(r) = a.gateways.get_mut(id) {
            &mut r.phase
        } else if let Some(r) = a.local_network_gateways.get_mut(id) {
            &mut r.phase
        } else if let Some(r) = a.connections.get_mut(id) {
            &mut r.phase
        } else {
            return false;
        };
        *phase = crate::world::Phase::stable(Failed, now);
        let _ = self.save_locked(&w);
        true
    }

    /// Creates the user's VNet (with its GatewaySubnet) and VPC (with a main route table
    /// holding a `local` route per CIDR) if they do not exist. Not a call of ours: it
    /// stands for what the user built before running vpnbridge. Saves only when it
    /// created something (and never when opened read-only).
    pub fn ensure_prerequisites(&self, vnet: &VnetSpec, vpc: &VpcSpec) -> Result<(), SimError> {
        let mut w = self.lock();
        let before = (w.azure.virtual_networks.len(), w.aws.vpcs.len(), w.aws.security_groups.len());
        let vnet_id = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/virtualNetworks/{}",
            vnet.subscription_id, vnet.resource_group, vnet.name
        );
        if let std::collections::btree_map::Entry::Vacant(slot) = w.azure.virtual_networks.entry(vnet_id.clone()) {
            if !vnet.address_space.iter().any(|a| a.contains(&vnet.gateway_subnet)) {
                return Err(SimError::Seed(format!("GatewaySubnet {} is outside the VNet's address space", vnet.gateway_subnet)));
            }
            slot.insert(AzVnet {
                id: vnet_id.clone(),
                name: vnet.name.clone(),
                location: vnet.location.clone(),
                address_space: vnet.address_space.clone(),
                subnets: vec![AzSubnet {
                    id: format!("{vnet_id}/subnets/GatewaySubnet"),
                    name: "GatewaySubnet".to_owned(),
                    prefix: vnet.gateway_subnet,
                }],
            });
        }
        if !w.aws.vpcs.contains_key(&vpc.vpc_id) {
            w.aws.vpcs.insert(vpc.vpc_id.clone(), AwsVpc { id: vpc.vpc_id.clone(), region: vpc.region.clone(), cidrs: vpc.cidrs.clone() });
            let rtb = w.ec2_id("rtb");
            let routes = vpc
                .cidrs
                .iter()
                .map(|c| AwsRoute { destination: IpNet::V4(*c), target: "local".to_owned(), origin: "CreateRouteTable".to_owned() })
                .collect();
            w.aws.route_tables.insert(
                rtb.clone(),
                AwsRouteTable { id: rtb, vpc_id: vpc.vpc_id.clone(), main: true, routes, propagating_vgws: Vec::new() },
            );
        }
        crate::probe::seed_security_group(&mut w, &vpc.vpc_id, &vnet.address_space);
        // Read-only commands see the prerequisites in memory and leave the file alone.
        let changed = before != (w.azure.virtual_networks.len(), w.aws.vpcs.len(), w.aws.security_groups.len());
        if changed && !self.inner.read_only { self.save_locked(&w) } else { Ok(()) }
    }

    // -----------------------------------------------------------------------------
    // Seeding foreign resources (someone else's, untagged); not calls of ours.
    // -----------------------------------------------------------------------------

    /// An untagged, available CGW (type ipsec.1, no device name); returns its id.
    pub fn add_foreign_customer_gateway(&self, ip: Ipv4Addr, asn: u32) -> String {
        let mut w = self.lock();
        let now = w.now_ms;
        let id = w.ec2_id("cgw");
        w.aws.customer_gateways.insert(
            id.clone(),
            AwsCgw {
                id: id.clone(),
                region: String::new(),
                phase: Phase::stable(AwsState::Available, now),
                ip,
                bgp_asn: asn,
                device_name: None,
                tags: Tags::new(),
            },
        );
        self.save_quietly(&w);
        id
    }

    /// An untagged, available VGW (ASN 64512), attached to `attached_to` if given.
    pub fn add_foreign_vpn_gateway(&self, attached_to: Option<&str>) -> String {
        let mut w = self.lock();
        let now = w.now_ms;
        let id = w.ec2_id("vgw");
        let attachments = attached_to
            .map(|vpc| AwsAttachment { vpc_id: vpc.to_owned(), phase: Phase::stable(AttachmentState::Attached, now) })
            .into_iter()
            .collect();
        w.aws.vpn_gateways.insert(
            id.clone(),
            AwsVgw {
                id: id.clone(),
                region: String::new(),
                phase: Phase::stable(AwsState::Available, now),
                amazon_asn: 64512,
                attachments,
                tags: Tags::new(),
            },
        );
        self.save_quietly(&w);
        id
    }

    /// A route someone else made in route table `rtb` (target `igw-…`, `pcx-…`, a VGW…).
    pub fn add_foreign_route(&self, rtb: &str, cidr: IpNet, target: &str) -> Result<(), SimError> {
        let mut w = self.lock();
        let table = w.aws.route_tables.get_mut(rtb).ok_or_else(|| SimError::Seed(format!("no route table {rtb}")))?;
        if table.routes.iter().any(|r| r.destination == cidr) {
            return Err(SimError::Seed(format!("route table {rtb} already has a route to {cidr}")));
        }
        table.routes.push(AwsRoute { destination: cidr, target: target.to_owned(), origin: "CreateRoute".to_owned() });
        self.save_locked(&w)
    }

    /// An untagged LocalNetworkGateway (Succeeded) in the target's resource group.
    pub fn add_foreign_local_network_gateway(
        &self,
        target: &crate::AzureTarget,
        name: &str,
        gateway_ip: Ipv4Addr,
        prefixes: &[IpNet],
    ) -> String {
        let mut w = self.lock();
        let now = w.now_ms;
        let id = arm_id(&target.subscription_id, &target.resource_group, "localNetworkGateways", name);
        w.azure.local_network_gateways.insert(
            id.clone(),
            AzLng {
                id: id.clone(),
                name: name.to_owned(),
                location: target.location.clone(),
                gateway_ip,
                address_prefixes: prefixes.to_vec(),
                bgp: None,
                phase: Phase::stable(ProvisioningState::Succeeded, now),
                tags: Tags::new(),
            },
        );
        self.save_quietly(&w);
        id
    }

    /// An untagged Standard, Static, zone-redundant public IP (Succeeded) in the
    /// target's resource group; returns its id and address.
    pub fn add_foreign_public_ip(&self, target: &crate::AzureTarget, name: &str) -> (String, Ipv4Addr) {
        let mut w = self.lock();
        let (id, ip) = foreign_public_ip(&mut w, target, name);
        self.save_quietly(&w);
        (id, ip)
    }

    /// An untagged, Succeeded, single-instance VPN gateway in the target VNet's
    /// GatewaySubnet (with its own public IP `{name}-pip`); returns its id.
    pub fn add_foreign_virtual_network_gateway(&self, target: &crate::AzureTarget, name: &str) -> Result<String, SimError> {
        let mut w = self.lock();
        let now = w.now_ms;
        let vnet_id = arm_id(&target.subscription_id, &target.resource_group, "virtualNetworks", &target.vnet);
        let subnet_id = w
            .azure
            .virtual_networks
            .get(&vnet_id)
            .and_then(|v| v.subnets.iter().find(|s| s.name == "GatewaySubnet"))
            .map(|s| s.id.clone())
            .ok_or_else(|| SimError::Seed(format!("no GatewaySubnet in {vnet_id}")))?;
        let (pip_id, _) = foreign_public_ip(&mut w, target, &format!("{name}-pip"));
        let id = arm_id(&target.subscription_id, &target.resource_group, "virtualNetworkGateways", name);
        w.azure.gateways.insert(
            id.clone(),
            AzGateway {
                id: id.clone(),
                name: name.to_owned(),
                location: target.location.clone(),
                gateway_type: "Vpn".to_owned(),
                vpn_type: "RouteBased".to_owned(),
                sku: "VpnGw1AZ".to_owned(),
                generation: "Generation1".to_owned(),
                active_active: false,
                enable_bgp: false,
                asn: None,
                ip_configurations: vec![AzIpConfig {
                    id: format!("{id}/ipConfigurations/default"),
                    name: "default".to_owned(),
                    subnet_id,
                    public_ip_id: pip_id,
                }],
                bgp_peering_addresses: Vec::new(),
                phase: Phase::stable(ProvisioningState::Succeeded, now),
                tags: Tags::new(),
                resize: None,
            },
        );
        self.save_locked(&w)?;
        Ok(id)
    }

    /// Seeding helpers return plain values; a failed save there surfaces on the next
    /// mutating call's save instead.
    fn save_quietly(&self, w: &World) {
        if let Err(e) = self.save_locked(w) {
            tracing::warn!(error = %e, "could not save the simulated world after seeding");
        }
    }
}

fn foreign_public_ip(w: &mut World, target: &crate::AzureTarget, name: &str) -> (String, Ipv4Addr) {
    let now = w.now_ms;
    let id = arm_id(&target.subscription_id, &target.resource_group, "publicIPAddresses", name);
    let ip = w.azure.allocate_public_ip();
    w.azure.public_ips.insert(
        id.clone(),
        AzPublicIp {
            id: id.clone(),
            name: name.to_owned(),
            location: target.location.clone(),
            sku: "Standard".to_owned(),
            static_allocation: true,
            zones: vec!["1".to_owned(), "2".to_owned(), "3".to_owned()],
            ip: Some(ip),
            phase: Phase::stable(ProvisioningState::Succeeded, now),
            tags: Tags::new(),
        },
    );
    (id, ip)
}
