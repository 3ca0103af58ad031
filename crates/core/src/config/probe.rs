//! `[probe]`: the users' test VMs that `verify` and `drill` ping through.

use super::aws::check_aws_id;
use super::azure::{AzurePart, parse_guid};
use super::error::{Problem, problem};
use super::schema::{Checker, Section};
use super::{AzureVmRef, ProbeConfig};

impl Checker<'_> {
    /// The `[probe]` table's VMs; `None` when one is wrong (reported).
    pub(super) fn probe(&mut self, t: &Section<'_, '_>, azure: Option<&AzurePart>) -> Option<ProbeConfig> {
        let vm = self.string(t, "azure_vm").and_then(|v| {
            let sub = azure.and_then(|a| a.subscription_id.clone()).unwrap_or_default();
            let rg = azure.and_then(|a| a.resource_group.clone()).unwrap_or_default();
            self.checked("probe.azure_vm", &v, |s| parse_vm_ref(s, &sub, &rg))
        });
        let instance = self
            .string(t, "aws_instance")
            .and_then(|v| self.checked("probe.aws_instance", &v, |s| check_aws_id(s, "i", "EC2 instance").map(|()| s.clone())));
        Some(ProbeConfig { azure_vm: vm?, aws_instance: instance? })
    }
}

/// An Azure VM: a name (1-64 letters, digits, '-', '_', '.'; in `azure.resource_group`)
/// or a full `/subscriptions/…/resourceGroups/…/providers/Microsoft.Compute/virtualMachines/…` id.
fn parse_vm_ref(s: &str, subscription: &str, resource_group: &str) -> Result<AzureVmRef, Problem> {
    let name_ok = |n: &str| {
        (1..=64).contains(&n.len())
            && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && n.starts_with(|c: char| c.is_ascii_alphanumeric())
            && !n.ends_with(['.', '-'])
    };
    if s.starts_with('/') {
        let seg: Vec<&str> = s.trim_end_matches('/').split('/').skip(1).collect();
        if let ["subscriptions", sub, rg, rg_name, p, ns, vms, name] = seg.as_slice()
            && rg.eq_ignore_ascii_case("resourceGroups")
            && p.eq_ignore_ascii_case("providers")
            && ns.eq_ignore_ascii_case("Microsoft.Compute")
            && vms.eq_ignore_ascii_case("virtualMachines")
            && name_ok(name)
        {
            let sub = parse_guid(sub, "")?;
            return Ok(AzureVmRef { subscription_id: sub, resource_group: (*rg_name).to_owned(), name: (*name).to_owned() });
        }
        return Err(problem(
            format!("{s:?} is not a virtual machine resource id"),
            "write the VM's name (it is looked for in azure.resource_group), or its full id \
             /subscriptions/<GUID>/resourceGroups/<group>/providers/Microsoft.Compute/virtualMachines/<name> \
             (`az vm show -g <group> -n <name> --query id -o tsv` prints it)",
        ));
    }
    if !name_ok(s) {
        return Err(problem(
            format!("{s:?} is not an Azure VM name (1-64 letters, digits, '-', '_' or '.', starting with a letter or digit)"),
            "write the VM's name as the portal or `az vm list -g <group> -o table` shows it, or its full resource id",
        ));
    }
    Ok(AzureVmRef { subscription_id: subscription.to_owned(), resource_group: resource_group.to_owned(), name: s.to_owned() })
}
