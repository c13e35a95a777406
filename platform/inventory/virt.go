package inventory

import "strings"

// dmiVendorVM maps DMI vendor strings to hypervisors (systemd's table).
func dmiVendorVM(val, product string) string {
	for _, m := range []struct{ prefix, vm string }{
		{"KVM", "kvm"}, {"OpenStack", "kvm"}, {"KubeVirt", "kvm"}, {"Amazon EC2", "amazon"},
		{"QEMU", "qemu"}, {"VMware", "vmware"}, {"VMW", "vmware"}, {"innotek GmbH", "oracle"},
		{"VirtualBox", "oracle"}, {"Oracle Corporation", "oracle"}, {"Xen", "xen"}, {"Bochs", "bochs"},
		{"Parallels", "parallels"}, {"BHYVE", "bhyve"}, {"Hyper-V", "microsoft"}, {"Apple Virtualization", "apple"},
		{"Google Compute Engine", "google"}, {"Google", "google"},
	} {
		if strings.HasPrefix(val, m.prefix) {
			return m.vm
		}
	}
	if strings.HasPrefix(val, "Microsoft Corporation") && strings.Contains(product, "Virtual Machine") {
		return "microsoft"
	}
	return ""
}
