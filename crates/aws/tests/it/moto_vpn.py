"""vpnbridge's EC2 test server: moto, plus the Site-to-Site VPN parts moto lacks.

Run with the harness virtualenv's python: `python moto_vpn.py <port> [request-log]`.
It binds 127.0.0.1 only. Everything below follows the shapes of the EC2 API
reference (docs.aws.amazon.com/AWSEC2/latest/APIReference/), so the adapter under
test sees what real EC2 sends and never special-cases moto. Gaps filled (moto 5.2.5):

1. CreateVpnConnection ignores `Options`: we keep `Options.StaticRoutesOnly` and answer
   with `Options.TunnelOptions[]` (OutsideIpAddress, TunnelInsideCidr, PreSharedKey,
   IkeVersions), one per tunnel, filling what the caller left out the way AWS does
   (random 32-character key, a free /30 in 169.254.0.0/16). A pinned TunnelInsideCidr
   that another connection on the same VGW holds is refused (`InvalidCidr.InUse`; the
   API reference: unique across the VPN connections of a VGW). Each connection gets two
   distinct outside IPs (moto's template document has one IP for both tunnels). AWS
   promises no order (terraform-provider-aws #5809, #19079): a seeded choice per
   connection (`VPNBRIDGE_MOTO_SEED`, default 1) decides whether `TunnelOptions[0]`
   lands on the lower or the higher outside IP, and another the order in which the
   tunnels are listed, so both orders occur and the core must match by value.
   `CustomerGatewayConfiguration` is re-rendered with the same tunnel values.
2. `VgwTelemetry[]` (VpnTunnelTelemetry): one entry per tunnel, DOWN (nothing
   answers IKE on loopback), with a StatusMessage and LastStatusChange; with
   `VPNBRIDGE_MOTO_TELEMETRY_UP=1` every tunnel is scripted UP (the ARM fake's
   `script_peer_up` is the other half: end-to-end tests of verify with probes).
3. CreateVpnConnectionRoute / DeleteVpnConnectionRoute (moto: HTTP 500): `Routes[]`
   (VpnStaticRoute: DestinationCidrBlock, Source Static, State available).
4. ModifyVpnTunnelOptions (moto: HTTP 500): updates PreSharedKey / TunnelInsideCidr of
   the tunnel named by VpnTunnelOutsideIpAddress; answers the VpnConnection.
5. CreateCustomerGateway: moto always makes a new CGW and drops DeviceName. EC2 returns
   the existing gateway when type, IP, ASN (and device name) match, whoever owns it;
   a distinct DeviceName makes a new one. We keep DeviceName and reproduce that. The
   answer carries no tags: nothing in the API reference promises that the create
   response echoes TagSpecifications, so the adapter must tell ours from a foreign
   gateway by describing it.
6. A request log: every EC2 action, one line each, appended to the file given as the
   second argument (the tests count calls from the server's side).
7. ModifyVpnConnection (moto: not implemented): moves the connection to the customer
   gateway named by CustomerGatewayId (which must exist), keeping its outside IPs and
   tunnel options; answers the VpnConnection.
8. The `modifying` state (not in the documented VpnState enum, but what EC2 reports and
   terraform-provider-aws's `waitVPNConnectionUpdated` waits on): after
   ModifyVpnTunnelOptions / ModifyVpnConnection the connection is still described as it
   was (`available`, old options) for `VPNBRIDGE_MOTO_MODIFY_LAG` seconds (default 1),
   then `modifying` for `VPNBRIDGE_MOTO_MODIFY_SECONDS` (default 2), then `available`
   with the change in place. Another Modify* meanwhile fails with `IncorrectState`.

9. Systems Manager for the probe (moto: no DescribeInstanceInformation; SendCommand
   accepts any instance; GetCommandInvocation answers a fixed empty Success). The
   harness serves the three calls itself, after the SSM API reference:
   - An EC2 instance is a managed instance only when tagged `vpnbridge-fake:ssm` =
     `online` (PingStatus Online) or `offline` (ConnectionLost); untagged instances are
     not managed, as on AWS without the agent and the instance profile.
     `vpnbridge-fake:platform` = `Windows` makes it a Windows instance (default Linux).
   - DescribeInstanceInformation lists the managed instances (filter `InstanceIds`),
     with PingStatus, PlatformType, ResourceType `EC2Instance` and IPAddress.
   - SendCommand takes only `AWS-RunShellScript` / `AWS-RunPowerShellScript`
     (`InvalidDocument` otherwise) and instances that are managed, online and running
     (`InvalidInstanceId` otherwise, as SSM words it); a shell script sent to a Windows
     instance (or PowerShell to Linux) ends `Failed`.
   - GetCommandInvocation: `InvocationDoesNotExist` for an unknown command or
     instance; `InProgress` for `VPNBRIDGE_MOTO_SSM_RUN_SECONDS` (default 1), then the
     scripted outcome of the instance's `vpnbridge-fake:ping` tag: `all` (default,
     every echo replied), `none` (total loss), `partial` (echoes 2 and 4 lost; in a
     timestamped series, samples 10 to 39 lost: a 30 s outage), `fail` (the command
     fails: Status Failed, ResponseCode 1). Output is written the way iputils `ping`
     (Linux) and Windows PowerShell 5.1 `Test-Connection` (Windows) print it; the ping
     itself is scripted, not sent: moto has no data plane.

10. VGW route propagation (bgp-ha; moto 5.2.5 implements neither call, and upstream moto
   has no `PropagatingVgws` either): EnableVgwRoutePropagation / DisableVgwRoutePropagation
   on a route table, after the EC2 API reference. Enable needs the route table
   (`InvalidRouteTableID.NotFound`) and the VGW (`InvalidVpnGatewayID.NotFound`), attached
   or attaching to the table's VPC (`Gateway.NotAttached`, the simulator's code: AWS's is
   unconfirmed); enabling twice changes nothing. Disable needs the route table only, and
   disabling what is not enabled is no error (as on the simulator). DescribeRouteTables
   lists the table's `PropagatingVgws[]{GatewayId}`. moto has no BGP, so a dynamic
   connection (`StaticRoutesOnly` false) has no session unless the peer is scripted up
   (`VPNBRIDGE_MOTO_TELEMETRY_UP=1`): then its tunnels are UP with `"{n} BGP ROUTES"` and
   `AcceptedRouteCount` n, n being the prefixes the scripted Azure peer announces
   (`VPNBRIDGE_MOTO_BGP_PREFIXES`, comma-separated, default `10.1.0.0/16`, the ARM fake's
   VNet), and each table propagating a VGW attached to its VPC that has such a connection
   lists a route per prefix (`Origin` `EnableVgwRoutePropagation`, `State` active), except
   where a static route has the same destination. A dynamic tunnel that is not scripted
   up is DOWN with `AcceptedRouteCount` 0.

Every create stays immediately `available` (moto's behaviour); pending states are
covered by the adapter's replay tests instead.
"""

import ipaddress
import os
import random
import string
import sys
import threading
import time
from datetime import datetime, timezone

from moto.core.responses import ActionResult, EmptyResult
from moto.ec2.exceptions import EC2ClientError, InvalidParameterValue, InvalidVpnConnectionIdError
from moto.ec2.models.vpn_connections import VPNConnection
from moto.ec2.responses import EC2Response
from moto.ec2.responses.customer_gateways import CustomerGateways
from moto.ec2.responses.vpn_connections import VPNConnections

_lock = threading.Lock()
_next_ip = [0]


_seed = int(os.environ.get("VPNBRIDGE_MOTO_SEED", "1"))
MODIFY_LAG = float(os.environ.get("VPNBRIDGE_MOTO_MODIFY_LAG", "1"))
MODIFY_SECONDS = float(os.environ.get("VPNBRIDGE_MOTO_MODIFY_SECONDS", "2"))
TELEMETRY_UP = os.environ.get("VPNBRIDGE_MOTO_TELEMETRY_UP") == "1"
BGP_PREFIXES = [p.strip() for p in os.environ.get("VPNBRIDGE_MOTO_BGP_PREFIXES", "10.1.0.0/16").split(",") if p.strip()]


def _outside_ips():
    """Two fresh, distinct public addresses (documentation-free space, never routed),
    in the order the connection's TunnelOptions get them, and whether the answer lists
    the tunnels the other way round: seeded choices per connection."""
    with _lock:
        n = _next_ip[0]
        _next_ip[0] += 1
    base = 0x03000000 + n * 4  # 3.0.0.0 + 4n
    ips = [str(ipaddress.IPv4Address(base + 1)), str(ipaddress.IPv4Address(base + 2))]
    pick = random.Random(_seed * 7919 + n)
    if pick.random() < 0.5:
        ips.reverse()
    return ips, pick.random() < 0.5


def _random_psk():
    alphabet = string.ascii_letters + string.digits
    first = random.choice(string.ascii_letters)
    return first + "".join(random.choice(alphabet) for _ in range(31))


def _used_inside_cidrs(backend):
    used = set()
    for c in backend.vpn_connections.values():
        for t in (getattr(c, "options", None) or {}).get("TunnelOptions", []):
            used.add(t["TunnelInsideCidr"])
    return used


def _inside_cidrs_on(backend, vgw_id):
    used = set()
    for c in backend.vpn_connections.values():
        if c.vpn_gateway_id == vgw_id and c.state != "deleted":
            for t in (getattr(c, "options", None) or {}).get("TunnelOptions", []):
                used.add(t["TunnelInsideCidr"])
    return used


def _free_inside_cidr(backend):
    used = _used_inside_cidrs(backend)
    while True:
        third = random.randint(10, 250)
        fourth = random.randrange(0, 256, 4)
        if third == 169 and fourth == 252:  # 169.254.169.252/30 is reserved
            continue
        cidr = f"169.254.{third}.{fourth}/30"
        if cidr not in used:
            return cidr


def _now():
    return datetime.now(timezone.utc).replace(microsecond=0)


def _find_vpn(backend, vpn_id):
    conn = backend.vpn_connections.get(vpn_id)
    if conn is None or conn.state == "deleted":
        raise InvalidVpnConnectionIdError(vpn_id)
    return conn


# -- 1, 2: Options, TunnelOptions, VgwTelemetry on CreateVpnConnection ------------------

_orig_create_vpn = VPNConnections.create_vpn_connection


def create_vpn_connection(self):
    options = self._get_param("Options") or {}
    specs = list(options.get("TunnelOptions") or [])
    while len(specs) < 2:
        specs.append({})
    vgw_id = self._get_param("VpnGatewayId")
    held = _inside_cidrs_on(self.ec2_backend, vgw_id)
    for spec in specs:
        cidr = spec.get("TunnelInsideCidr")
        if cidr and cidr in held:
            raise EC2ClientError("InvalidCidr.InUse", f"The tunnel inside CIDR {cidr} is already in use on {vgw_id}.")
    result = _orig_create_vpn(self)
    conn = result.result["VpnConnection"]
    tunnels = []
    ips, listed_reversed = _outside_ips()
    for ip, spec in zip(ips, specs[:2]):
        tunnels.append(
            {
                "OutsideIpAddress": ip,
                "TunnelInsideCidr": spec.get("TunnelInsideCidr") or _free_inside_cidr(self.ec2_backend),
                "PreSharedKey": spec.get("PreSharedKey") or _random_psk(),
                "IkeVersions": [{"Value": "ikev1"}, {"Value": "ikev2"}],
            }
        )
    if listed_reversed:
        tunnels.reverse()
    static = str(options.get("StaticRoutesOnly", "false")).lower() == "true"
    conn.options = {"StaticRoutesOnly": static, "TunnelInsideIpVersion": "ipv4", "TunnelOptions": tunnels}
    conn.routes = []
    # A dynamic tunnel is UP only with its BGP session (10): "{n} BGP ROUTES".
    accepted = 0 if static or not TELEMETRY_UP else len(BGP_PREFIXES)
    conn.vgw_telemetry = [
        {
            "OutsideIpAddress": t["OutsideIpAddress"],
            "Status": "UP" if TELEMETRY_UP else "DOWN",
            "StatusMessage": ("" if static else f"{accepted} BGP ROUTES") if TELEMETRY_UP else "IPSEC IS DOWN",
            "LastStatusChange": _now(),
            "AcceptedRouteCount": accepted,
        }
        for t in tunnels
    ]
    return result


VPNConnections.create_vpn_connection = create_vpn_connection


def _configuration(self):
    """The CustomerGatewayConfiguration document with the connection's real tunnels."""
    tunnels = (getattr(self, "options", None) or {}).get("TunnelOptions") or []
    cgw = self.ec2_backend.customer_gateways.get(self.customer_gateway_id)
    cgw_ip = cgw.ip_address if cgw else ""
    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<vpn_connection id="{self.id}">',
             f"<customer_gateway_id>{self.customer_gateway_id}</customer_gateway_id>",
             f"<vpn_gateway_id>{self.vpn_gateway_id or ''}</vpn_gateway_id>",
             f"<vpn_connection_type>{self.type}</vpn_connection_type>"]
    for t in tunnels:
        net = ipaddress.IPv4Network(t["TunnelInsideCidr"])
        aws_inside, cgw_inside = net.network_address + 1, net.network_address + 2
        parts.append(
            "<ipsec_tunnel><customer_gateway>"
            f"<tunnel_outside_address><ip_address>{cgw_ip}</ip_address></tunnel_outside_address>"
            f"<tunnel_inside_address><ip_address>{cgw_inside}</ip_address><network_mask>255.255.255.252</network_mask>"
            "<network_cidr>30</network_cidr></tunnel_inside_address></customer_gateway><vpn_gateway>"
            f"<tunnel_outside_address><ip_address>{t['OutsideIpAddress']}</ip_address></tunnel_outside_address>"
            f"<tunnel_inside_address><ip_address>{aws_inside}</ip_address><network_mask>255.255.255.252</network_mask>"
            "<network_cidr>30</network_cidr></tunnel_inside_address></vpn_gateway>"
            f"<ike><authentication_protocol>sha1</authentication_protocol><pre_shared_key>{t['PreSharedKey']}</pre_shared_key></ike>"
            "</ipsec_tunnel>"
        )
    parts.append("</vpn_connection>")
    return "\n".join(parts)


VPNConnection.customer_gateway_configuration = property(_configuration)


# -- 3: CreateVpnConnectionRoute / DeleteVpnConnectionRoute ---------------------------


def create_vpn_connection_route(self):
    conn = _find_vpn(self.ec2_backend, self._get_param("VpnConnectionId"))
    cidr = self._get_param("DestinationCidrBlock")
    routes = getattr(conn, "routes", None)
    if routes is None:
        routes = conn.routes = []
    if not any(r["DestinationCidrBlock"] == cidr for r in routes):
        routes.append({"DestinationCidrBlock": cidr, "Source": "Static", "State": "available"})
    return EmptyResult()


def delete_vpn_connection_route(self):
    conn = _find_vpn(self.ec2_backend, self._get_param("VpnConnectionId"))
    cidr = self._get_param("DestinationCidrBlock")
    routes = getattr(conn, "routes", None) or []
    if not any(r["DestinationCidrBlock"] == cidr for r in routes):
        raise InvalidParameterValue(f"The route {cidr} does not exist on {conn.id}")
    conn.routes = [r for r in routes if r["DestinationCidrBlock"] != cidr]
    return EmptyResult()


# -- 4, 7, 8: ModifyVpnTunnelOptions, ModifyVpnConnection, `modifying` ----------------


class IncorrectState(EC2ClientError):
    def __init__(self, message):
        super().__init__("IncorrectState", message)


def _settle(conn):
    """Applies a modification whose time is up; the state EC2 describes now."""
    pending = conn.__dict__.get("_pending")
    base = conn.__dict__.get("_state", "available")
    if pending is None or base != "available":
        return base
    elapsed = time.monotonic() - pending["at"]
    if elapsed < MODIFY_LAG:
        return "available"  # not visible yet: described as it was
    if elapsed < MODIFY_LAG + MODIFY_SECONDS:
        return "modifying"
    pending["apply"]()
    conn.__dict__["_pending"] = None
    for t in getattr(conn, "vgw_telemetry", None) or []:
        t["LastStatusChange"] = _now()
    return "available"


def _set_state(conn, value):
    conn.__dict__["_state"] = value


VPNConnection.state = property(_settle, _set_state)


def _begin_modification(conn, apply):
    if conn.state != "available" or conn.__dict__.get("_pending") is not None:
        raise IncorrectState(f"The VPN connection {conn.id} is being modified; try again when it is available.")
    conn.__dict__["_pending"] = {"at": time.monotonic(), "apply": apply}


def modify_vpn_tunnel_options(self):
    conn = _find_vpn(self.ec2_backend, self._get_param("VpnConnectionId"))
    ip = self._get_param("VpnTunnelOutsideIpAddress")
    spec = self._get_param("TunnelOptions") or {}
    tunnels = (getattr(conn, "options", None) or {}).get("TunnelOptions") or []
    tunnel = next((t for t in tunnels if t["OutsideIpAddress"] == ip), None)
    if tunnel is None:
        raise InvalidParameterValue(f"The VPN tunnel outside IP address {ip} does not belong to {conn.id}")
    cidr = spec.get("TunnelInsideCidr")
    if cidr and cidr != tunnel["TunnelInsideCidr"] and cidr in _used_inside_cidrs(self.ec2_backend):
        raise EC2ClientError("InvalidCidr.InUse", f"The tunnel inside CIDR {cidr} is already in use.")

    def apply():
        if spec.get("PreSharedKey"):
            tunnel["PreSharedKey"] = spec["PreSharedKey"]
        if cidr:
            tunnel["TunnelInsideCidr"] = cidr

    _begin_modification(conn, apply)
    return ActionResult({"VpnConnection": conn})


def modify_vpn_connection(self):
    conn = _find_vpn(self.ec2_backend, self._get_param("VpnConnectionId"))
    cgw_id = self._get_param("CustomerGatewayId")
    if cgw_id:
        self.ec2_backend.get_customer_gateway(cgw_id)  # raises InvalidCustomerGatewayID.NotFound

        def apply():
            conn.customer_gateway_id = cgw_id

        _begin_modification(conn, apply)
    return ActionResult({"VpnConnection": conn})


VPNConnections.modify_vpn_connection = modify_vpn_connection
VPNConnections.create_vpn_connection_route = create_vpn_connection_route
VPNConnections.delete_vpn_connection_route = delete_vpn_connection_route
VPNConnections.modify_vpn_tunnel_options = modify_vpn_tunnel_options


# -- 5: CreateCustomerGateway returns the existing gateway ------------------------------

_orig_create_cgw = CustomerGateways.create_customer_gateway


def create_customer_gateway(self):
    ip = self._get_param("IpAddress") or self._get_param("PublicIp")
    asn = str(self._get_param("BgpAsn") or "65000")
    kind = self._get_param("Type") or "ipsec.1"
    device = self._get_param("DeviceName")
    for cgw in self.ec2_backend.customer_gateways.values():
        if (
            cgw.state != "deleted"
            and cgw.ip_address == ip
            and str(cgw.bgp_asn) == asn
            and cgw.type == kind
            and getattr(cgw, "device_name", None) == device
        ):
            return ActionResult({"CustomerGateway": _untagged(cgw)})
    result = _orig_create_cgw(self)
    cgw = result.result["CustomerGateway"]
    cgw.device_name = device
    return ActionResult({"CustomerGateway": _untagged(cgw)})


def _untagged(cgw):
    """The CustomerGateway shape of a create answer, without Tags."""
    out = {
        "CustomerGatewayId": cgw.id,
        "State": cgw.state,
        "Type": cgw.type,
        "IpAddress": cgw.ip_address,
        "BgpAsn": str(cgw.bgp_asn),
    }
    if getattr(cgw, "device_name", None):
        out["DeviceName"] = cgw.device_name
    return out


CustomerGateways.create_customer_gateway = create_customer_gateway


# -- 6: request log --------------------------------------------------------------------

_log_path = sys.argv[2] if len(sys.argv) > 2 else None
_orig_call_action = EC2Response.call_action


def call_action(self):
    if _log_path:
        with _lock, open(_log_path, "a", encoding="utf-8") as f:
            f.write(self._get_action() + "\n")
    return _orig_call_action(self)


EC2Response.call_action = call_action


# -- 9: Systems Manager for the probe ----------------------------------------------------

import re
import uuid

from moto.ec2 import ec2_backends
from moto.ssm.exceptions import SSMException
from moto.ssm.responses import SimpleSystemManagerResponse

SSM_RUN_SECONDS = float(os.environ.get("VPNBRIDGE_MOTO_SSM_RUN_SECONDS", "1"))
_ssm_commands = {}
_DOCUMENTS = {"AWS-RunShellScript": "Linux", "AWS-RunPowerShellScript": "Windows"}


def _ec2_instance(resp, instance_id):
    backend = ec2_backends[resp.current_account][resp.region]
    for reservation in backend.reservations.values():
        for instance in reservation.instances:
            if instance.id == instance_id:
                tags = {t["key"]: t["value"] for t in backend.describe_tags(filters={"resource-id": [instance_id]})}
                return instance, tags
    return None, {}


def _state(instance):
    state = getattr(instance, "_state", None)
    return getattr(state, "name", "running")


def _managed(instance, tags):
    return tags.get("vpnbridge-fake:ssm") in ("online", "offline")


def _information(instance, tags):
    platform = tags.get("vpnbridge-fake:platform", "Linux")
    return {
        "InstanceId": instance.id,
        "PingStatus": "Online" if tags.get("vpnbridge-fake:ssm") == "online" else "ConnectionLost",
        "LastPingDateTime": datetime.now(timezone.utc),
        "AgentVersion": "3.3.1142.0",
        "IsLatestVersion": True,
        "PlatformType": platform,
        "PlatformName": "Microsoft Windows Server 2022 Datacenter" if platform == "Windows" else "Amazon Linux",
        "PlatformVersion": "10.0.20348" if platform == "Windows" else "2023",
        "ResourceType": "EC2Instance",
        "IPAddress": instance.private_ip,
        "ComputerName": f"ip-{instance.private_ip.replace('.', '-')}.ec2.internal",
    }


def describe_instance_information(self):
    wanted = None
    for f in (self._get_param("Filters") or []) + (self._get_param("InstanceInformationFilterList") or []):
        key = f.get("Key") or f.get("key")
        if key in ("InstanceIds", "InstanceIds".lower()):
            wanted = set(f.get("Values") or f.get("valueSet") or [])
    backend = ec2_backends[self.current_account][self.region]
    out = []
    for reservation in backend.reservations.values():
        for instance in reservation.instances:
            if wanted is not None and instance.id not in wanted:
                continue
            _, tags = _ec2_instance(self, instance.id)
            if _managed(instance, tags) and _state(instance) != "terminated":
                out.append(_information(instance, tags))
    return ActionResult({"InstanceInformationList": out})


def send_command(self):
    document = self._get_param("DocumentName")
    if document not in _DOCUMENTS:
        raise SSMException("InvalidDocument", f"Document with name {document} does not exist.")
    instance_ids = self._get_param("InstanceIds", [])
    bad = []
    for iid in instance_ids:
        instance, tags = _ec2_instance(self, iid)
        if instance is None or not _managed(instance, tags) or tags.get("vpnbridge-fake:ssm") != "online" or _state(instance) != "running":
            bad.append(iid)
    if bad or not instance_ids:
        raise SSMException("InvalidInstanceId", f"Instances [{bad}] not in a valid state for account {self.current_account}")
    parameters = self._get_param("Parameters", {})
    command_id = str(uuid.uuid4())
    now = datetime.now(timezone.utc)
    with _lock:
        _ssm_commands[command_id] = {
            "document": document,
            "script": "\n".join(parameters.get("commands", [])),
            "instances": list(instance_ids),
            "started": time.time(),
        }
    command = {
        "CommandId": command_id,
        "DocumentName": document,
        "DocumentVersion": "$DEFAULT",
        "Comment": self._get_param("Comment", ""),
        "Parameters": parameters,
        "InstanceIds": instance_ids,
        "RequestedDateTime": now,
        "Status": "Pending",
        "StatusDetails": "Pending",
        "TargetCount": len(instance_ids),
        "CompletedCount": 0,
        "ErrorCount": 0,
    }
    return ActionResult({"Command": command})


def _iputils(target, count, lost):
    lines = [f"PING {target} ({target}) 56(84) bytes of data."]
    times = []
    for seq in range(1, count + 1):
        if seq in lost:
            continue
        t = 1.5 + (seq % 3) * 0.2
        times.append(t)
        lines.append(f"64 bytes from {target}: icmp_seq={seq} ttl=63 time={t:.2f} ms")
    received = len(times)
    loss = round(100 * (count - received) / count)
    lines += ["", f"--- {target} ping statistics ---", f"{count} packets transmitted, {received} received, {loss}% packet loss, time {1000 * (count - 1) + 6}ms"]
    if times:
        avg = sum(times) / len(times)
        lines.append(f"rtt min/avg/max/mdev = {min(times):.3f}/{avg:.3f}/{max(times):.3f}/0.100 ms")
    lines.append(f"vpnbridge-exit={0 if received else 1}")
    return "\n".join(lines) + "\n"


def _test_connection(target, count, lost):
    lines = ["", "Source        Destination     IPV4Address      IPV6Address                              Bytes    Time(ms)",
             "------        -----------     -----------      -----------                              -----    --------"]
    for seq in range(1, count + 1):
        if seq not in lost:
            lines.append(f"EC2AMAZ-TEST   {target:<15} {target:<16}                                         32       {1 + seq % 2}")
    lines += ["", "", f"vpnbridge-sent={count}"]
    return "\n".join(lines) + "\n"


def _series(count, interval, lost, started):
    return "".join(
        f"vpnbridge-sample seq={i} at={started + (i - 1) * interval:.3f} reply={0 if i in lost else 1}\n" for i in range(1, count + 1)
    )


def _output(command, mode):
    script = command["script"]
    n = lambda pattern, default: int(m.group(1)) if (m := re.search(pattern, script)) else default
    target = re.search(r"(?:ping -c \d+ -W \d+ |-ComputerName )(\d+\.\d+\.\d+\.\d+)", script)
    target = target.group(1) if target else "0.0.0.0"
    if "vpnbridge-sample" in script:
        count = n(r"-l[te] (\d+)", 1)
        interval = (m.group(1) and float(m.group(1))) if (m := re.search(r"sleep (\d+(?:\.\d+)?)", script)) else n(r"-Milliseconds (\d+)", 1000) / 1000
        lost = {"all": set(), "none": set(range(1, count + 1)), "partial": set(range(10, 40))}[mode]
        return _series(count, interval, lost, command["started"])
    count = n(r"(?:-c|-Count) (\d+)", 5)
    lost = {"all": set(), "none": set(range(1, count + 1)), "partial": {2, 4}}[mode]
    return _test_connection(target, count, lost) if command["document"] == "AWS-RunPowerShellScript" else _iputils(target, count, lost)


def get_command_invocation(self):
    command_id = self._get_param("CommandId")
    instance_id = self._get_param("InstanceId")
    command = _ssm_commands.get(command_id)
    if command is None or instance_id not in command["instances"]:
        raise SSMException("InvocationDoesNotExist", "An error occurred (InvocationDoesNotExist) when calling the GetCommandInvocation operation")
    instance, tags = _ec2_instance(self, instance_id)
    base = {
        "CommandId": command_id,
        "InstanceId": instance_id,
        "DocumentName": command["document"],
        "DocumentVersion": "$DEFAULT",
        "PluginName": "aws:runShellScript" if command["document"] == "AWS-RunShellScript" else "aws:runPowerShellScript",
        "ExecutionStartDateTime": datetime.fromtimestamp(command["started"], timezone.utc).isoformat(),
        "StandardOutputUrl": "",
        "StandardErrorUrl": "",
    }
    # A series runs as long as it samples (scaled down: one tenth of a second per sample).
    samples = re.search(r"-l[te] (\d+)", command["script"]) if "vpnbridge-sample" in command["script"] else None
    run_for = SSM_RUN_SECONDS + (int(samples.group(1)) * 0.1 if samples else 0)
    if time.time() - command["started"] < run_for:
        return ActionResult({**base, "Status": "InProgress", "StatusDetails": "InProgress", "ResponseCode": -1,
                             "StandardOutputContent": "", "StandardErrorContent": ""})
    platform = tags.get("vpnbridge-fake:platform", "Linux")
    mode = tags.get("vpnbridge-fake:ping", "all")
    if _DOCUMENTS[command["document"]] != platform:
        return ActionResult({**base, "Status": "Failed", "StatusDetails": "Failed", "ResponseCode": 1, "StandardOutputContent": "",
                             "StandardErrorContent": f"Step execution skipped due to unsupported platform ({platform})."})
    if mode == "fail":
        return ActionResult({**base, "Status": "Failed", "StatusDetails": "Failed", "ResponseCode": 1, "StandardOutputContent": "",
                             "StandardErrorContent": "failed to run commands: exit status 1"})
    return ActionResult({**base, "Status": "Success", "StatusDetails": "Success", "ResponseCode": 0,
                         "ExecutionEndDateTime": datetime.now(timezone.utc).isoformat(),
                         "StandardOutputContent": _output(command, mode), "StandardErrorContent": ""})


SimpleSystemManagerResponse.describe_instance_information = describe_instance_information
SimpleSystemManagerResponse.send_command = send_command
SimpleSystemManagerResponse.get_command_invocation = get_command_invocation


# -- 10: VGW route propagation ---------------------------------------------------------

from moto.ec2.exceptions import InvalidVpnGatewayIdError
from moto.ec2.models.route_tables import RouteTable
from moto.ec2.responses.route_tables import RouteTables


def _propagating(table):
    return table.__dict__.setdefault("_vpnbridge_propagating_vgws", [])


def _attached_to(vgw, vpc_id, states=("attached",)):
    return any(a.vpc_id == vpc_id and a.state in states for a in vgw.attachments.values())


def enable_vgw_route_propagation(self):
    table = self.ec2_backend.get_route_table(self._get_param("RouteTableId"))  # InvalidRouteTableID.NotFound
    vgw_id = self._get_param("GatewayId")
    vgw = self.ec2_backend.vpn_gateways.get(vgw_id)
    if vgw is None or vgw.state in ("deleting", "deleted"):
        raise InvalidVpnGatewayIdError(vgw_id)
    if not _attached_to(vgw, table.vpc_id, ("attaching", "attached")):
        raise EC2ClientError("Gateway.NotAttached", f"resource {vgw_id} is not attached to network {table.vpc_id}")
    with _lock:
        if vgw_id not in _propagating(table):
            _propagating(table).append(vgw_id)
    return EmptyResult()


def disable_vgw_route_propagation(self):
    table = self.ec2_backend.get_route_table(self._get_param("RouteTableId"))  # InvalidRouteTableID.NotFound
    vgw_id = self._get_param("GatewayId")
    with _lock:
        table.__dict__["_vpnbridge_propagating_vgws"] = [v for v in _propagating(table) if v != vgw_id]
    return EmptyResult()


def _has_bgp_session(backend, vgw_id):
    """A dynamic, available connection on the VGW whose peer is scripted up."""
    return TELEMETRY_UP and any(
        c.vpn_gateway_id == vgw_id
        and c.state == "available"
        and not (getattr(c, "options", None) or {}).get("StaticRoutesOnly", True)
        for c in backend.vpn_connections.values()
    )


def _table_routes(table):
    routes = list(table._routes.values())
    static = {r.destination_cidr_block for r in routes}
    for vgw_id in _propagating(table):
        vgw = table.ec2_backend.vpn_gateways.get(vgw_id)
        if vgw is None or not _attached_to(vgw, table.vpc_id) or not _has_bgp_session(table.ec2_backend, vgw_id):
            continue
        for prefix in BGP_PREFIXES:
            if prefix not in static:
                static.add(prefix)
                routes.append({"DestinationCidrBlock": prefix, "GatewayId": vgw_id, "Origin": "EnableVgwRoutePropagation", "State": "active"})
    return routes


RouteTable.routes = property(_table_routes)
RouteTable.propagating_vgws = property(lambda table: [{"GatewayId": v} for v in _propagating(table)])
RouteTables.enable_vgw_route_propagation = enable_vgw_route_propagation
RouteTables.disable_vgw_route_propagation = disable_vgw_route_propagation


if __name__ == "__main__":
    from moto.server import main

    main(["-H", "127.0.0.1", "-p", sys.argv[1]])
