/** An excerpt of pci.ids in its real format (vendor lines, TAB-indented devices), for simulated hosts. */
export const PCI_IDS_EXCERPT = `#
#	List of PCI ID's (excerpt installed by gpucc-sim)
#
#	Syntax:
#	vendor  vendor_name
#		device  device_name				<-- single tab
#			subvendor subdevice  subsystem_name	<-- two tabs
#
1000  Broadcom / LSI
	c030  PEX89000 PCIe Gen 5 Switch
1022  Advanced Micro Devices, Inc. [AMD]
	14ab  Genoa/Bergamo/Siena PCIe GPP Bridge
10de  NVIDIA Corporation
	10f8  TU104 HD Audio Controller
	1ad8  TU104 USB 3.1 Host Controller
	1ad9  TU104 USB Type-C UCSI Controller
	1eb1  TU104GL [Quadro RTX 4000]
	20b5  GA100 [A100 PCIe 80GB]
	22a3  GH100 [H100 NVSwitch]
	22e8  GB202 High Definition Audio Controller
	2330  GH100 [H100 SXM5 80GB]
		10de 16c1  H100 SXM5 80GB
	2331  GH100 [H100 PCIe]
		10de 1626  H100 PCIe
	2335  GH100 [H200 SXM 141GB]
	2342  GH100 [GH200 120GB / 480GB]
	2901  GB100 [B200]
	2941  GB100 [GB200]
	2bb5  GB202GL [RTX PRO 6000 Blackwell Server Edition]
15b3  Mellanox Technologies
	1021  MT2910 Family [ConnectX-7]
`;
