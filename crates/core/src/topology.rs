//! The deployment as a picture: `vpnbridge status --output mermaid` (or `dot`) draws
//! what exists in both clouds and each used tunnel coloured by its state, with the
//! tunnels that are down by design (Azure's other instance, which AWS refuses) dashed.
//!
//! Built from what was observed (never from the config alone): a resource not built
//! yet is drawn as "(not built)". Labels carry names, IPs and states, never a key.

use std::fmt::Write as _;

use crate::config::Config;
use crate::model::{AwsState, ProvisioningState, TunnelState};
use crate::pairing::{self, ObservedTunnel, TunnelHealth};
use crate::plan::Observed;

/// The drawing languages `status` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    /// A Mermaid flowchart (renders in GitHub and GitLab Markdown).
    Mermaid,
    /// Graphviz `dot` (render with `dot -Tsvg`).
    Dot,
}

/// How an edge is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// A resource holds the other (gateway -> instance, VGW -> VPN connection).
    Part,
    /// A used tunnel, by the state of its two ends.
    Tunnel(Health),
    /// Azure's other instance towards the same AWS tunnel: AWS refuses it by design.
    ByDesign,
}

/// A used tunnel's state for drawing: up at both ends, down (at either), or not known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Up,
    Down,
    Unknown,
}

#[derive(Debug, Clone)]
struct Node {
    id: String,
    label: String,
    /// 0: Azure, 1: AWS.
    side: usize,
}

#[derive(Debug, Clone)]
struct Edge {
    from: String,
    to: String,
    label: Option<String>,
    style: Style,
}

/// What is drawn: both clouds' nodes and the edges between them.
#[derive(Debug, Clone)]
pub struct Topology {
    titles: [String; 2],
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

impl Topology {
    /// The picture of what `observed` holds, tunnels from `joined` and `health` (as
    /// `status` computes them).
    pub fn new(config: &Config, observed: &Observed, joined: &[ObservedTunnel], health: &[TunnelHealth]) -> Self {
        let az = &observed.azure;
        let aws = &observed.aws;
        let list = |v: &[ipnet::Ipv4Net]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let titles = [
            format!("Azure VNet {} ({})", config.azure.vnet, list(&config.azure.address_space)),
            format!("AWS VPC {} ({})", config.aws.vpc_id, list(&config.aws.cidrs)),
        ];
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        let mut node = |id: &str, label: String, side: usize| nodes.push(Node { id: id.to_owned(), label, side });
        node(
            "gw",
            match &az.vpn_gateway {
                Some(g) => format!("VPN gateway {}\n{} {}", g.name, g.sku, azure_state(g.state)).trim_end().to_owned(),
                None => "VPN gateway\n(not built)".to_owned(),
            },
            0,
        );
        node(
            "vgw",
            match aws.vpn_gateways.first() {
                Some(v) => format!("VGW {}\nASN {} {}", v.id, v.amazon_asn, aws_state(v.state)).trim_end().to_owned(),
                None => "virtual private gateway\n(not built)".to_owned(),
            },
            1,
        );
        let owner = crate::model::Owner::new(&config.name);
        for k in 0..pairing::INSTANCES {
            let ip = pairing::instance_ip(az, k).map_or_else(|| "no IP yet".to_owned(), |ip| ip.to_string());
            node(&format!("i{k}"), format!("instance {k}\n{ip}"), 0);
            edges.push(Edge { from: "gw".into(), to: format!("i{k}"), label: None, style: Style::Part });
            let vpn = pairing::vpn_connection(&owner, aws, k);
            let cgw = pairing::customer_gateway(&owner, aws, k);
            let label = match (vpn, cgw) {
                (Some(v), Some(c)) => format!("VPN connection {}\nCGW {} ({})", v.id, c.ip, c.id),
                (Some(v), None) => format!("VPN connection {}", v.id),
                (None, Some(c)) => format!("VPN connection {k}\n(not built; CGW {})", c.ip),
                (None, None) => format!("VPN connection {k}\n(not built)"),
            };
            node(&format!("vpn{k}"), label, 1);
            edges.push(Edge { from: "vgw".into(), to: format!("vpn{k}"), label: None, style: Style::Part });
        }
        for (t, h) in joined.iter().zip(health) {
            let slot = &t.slot;
            let tid = format!("t{}{}", slot.connection, slot.tunnel);
            let outside = t.aws_outside_ip.map_or_else(|| "not built".to_owned(), |ip| ip.to_string());
            node(&tid, format!("tunnel {}\n{outside}", slot.tunnel + 1), 1);
            edges.push(Edge { from: format!("vpn{}", slot.connection), to: tid.clone(), label: None, style: Style::Part });
            let down = |s: &Option<crate::endpoint::TunnelStatus>| s.as_ref().is_some_and(|s| s.state == TunnelState::Down);
            let health = if h.is_up() {
                Health::Up
            } else if down(&h.aws) || down(&h.azure_expected) {
                Health::Down
            } else {
                Health::Unknown
            };
            let word = match health {
                Health::Up => "UP",
                Health::Down => "DOWN",
                Health::Unknown => "unknown",
            };
            edges.push(Edge {
                from: format!("i{}", slot.expected_up_instance),
                to: tid.clone(),
                label: Some(format!("{}: {word}", slot.azure_connection)),
                style: Style::Tunnel(health),
            });
            edges.push(Edge {
                from: format!("i{}", slot.expected_down_instance),
                to: tid,
                label: Some("down by design".to_owned()),
                style: Style::ByDesign,
            });
        }
        Self { titles, nodes, edges }
    }

    pub fn render(&self, format: GraphFormat) -> String {
        match format {
            GraphFormat::Mermaid => self.mermaid(),
            GraphFormat::Dot => self.dot(),
        }
    }

    /// A Mermaid flowchart: one subgraph per cloud, `linkStyle` colouring each tunnel.
    pub fn mermaid(&self) -> String {
        let esc = |s: &str| s.replace('"', "#quot;").replace('\n', "<br/>");
        let mut out = String::from("flowchart LR\n");
        for (side, title) in self.titles.iter().enumerate() {
            let _ = writeln!(out, "  subgraph {}[\"{}\"]", ["azure", "aws"][side], esc(title));
            for n in self.nodes.iter().filter(|n| n.side == side) {
                let _ = writeln!(out, "    {}[\"{}\"]", n.id, esc(&n.label));
            }
            out.push_str("  end\n");
        }
        for e in &self.edges {
            let link = match (e.style, &e.label) {
                (Style::Part, _) => "---".to_owned(),
                (Style::ByDesign, Some(l)) => format!("-. \"{}\" .-", esc(l)),
                (Style::Tunnel(_), Some(l)) => format!("== \"{}\" ===", esc(l)),
                (_, None) => "---".to_owned(),
            };
            let _ = writeln!(out, "  {} {link} {}", e.from, e.to);
        }
        for (i, e) in self.edges.iter().enumerate() {
            if let Some(style) = css(e.style) {
                let _ = writeln!(out, "  linkStyle {i} {style}");
            }
        }
        out
    }

    /// A Graphviz graph: one cluster per cloud, tunnels coloured, by-design ones dashed.
    pub fn dot(&self) -> String {
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let mut out = String::from("graph vpnbridge {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n");
        for (side, title) in self.titles.iter().enumerate() {
            let _ = writeln!(out, "  subgraph cluster_{} {{\n    label=\"{}\";", ["azure", "aws"][side], esc(title));
            for n in self.nodes.iter().filter(|n| n.side == side) {
                let _ = writeln!(out, "    {} [label=\"{}\"];", n.id, esc(&n.label));
            }
            out.push_str("  }\n");
        }
        for e in &self.edges {
            let mut attrs = Vec::new();
            if let Some(l) = &e.label {
                attrs.push(format!("label=\"{}\"", esc(l)));
            }
            match e.style {
                Style::Part => {}
                Style::ByDesign => attrs.push("style=dashed, color=\"#8c959f\"".into()),
                Style::Tunnel(h) => attrs.push(format!("penwidth=3, color=\"{}\"", colour(h))),
            }
            let attrs = if attrs.is_empty() { String::new() } else { format!(" [{}]", attrs.join(", ")) };
            let _ = writeln!(out, "  {} -- {}{attrs};", e.from, e.to);
        }
        out.push_str("}\n");
        out
    }
}

fn colour(h: Health) -> &'static str {
    match h {
        Health::Up => "#2da44e",
        Health::Down => "#cf222e",
        Health::Unknown => "#bf8700",
    }
}

fn css(style: Style) -> Option<String> {
    match style {
        Style::Part => None,
        Style::ByDesign => Some("stroke:#8c959f,stroke-dasharray:4 4".to_owned()),
        Style::Tunnel(h) => Some(format!("stroke:{},stroke-width:3px", colour(h))),
    }
}

/// A state as drawn: nothing when settled, else the cloud's word.
fn azure_state(s: ProvisioningState) -> &'static str {
    match s {
        ProvisioningState::Succeeded => "",
        ProvisioningState::Updating => "(Updating)",
        ProvisioningState::Deleting => "(Deleting)",
        ProvisioningState::Failed => "(Failed)",
    }
}

fn aws_state(s: AwsState) -> &'static str {
    match s {
        AwsState::Available => "",
        AwsState::Pending => "(pending)",
        AwsState::Modifying => "(modifying)",
        AwsState::Deleting => "(deleting)",
        AwsState::Deleted => "(deleted)",
    }
}
