import type { DriverSpec } from '../node/spec.js';
import { INTEL, MELLANOX, NVIDIA } from '../node/spec.js';

/** The PCI drivers a simulated host knows, with the match tables that decide autoprobe. */
export function standardDrivers(options: { vfioLoaded: boolean; nvidiaLoaded: boolean }): DriverSpec[] {
  return [
    {
      name: 'nvidia',
      module: 'nvidia',
      match: [
        { vendor: NVIDIA, classValue: 0x030000, classMask: 0xffff00 },
        { vendor: NVIDIA, classValue: 0x030200, classMask: 0xffff00 },
      ],
      vfio: false,
      loaded: options.nvidiaLoaded,
    },
    {
      name: 'nvidia-nvswitch',
      module: 'nvidia',
      match: [{ vendor: NVIDIA, classValue: 0x068000, classMask: 0xffff00 }],
      vfio: false,
      loaded: options.nvidiaLoaded,
    },
    {
      name: 'snd_hda_intel',
      module: 'snd_hda_intel',
      match: [{ classValue: 0x040300, classMask: 0xffff00 }],
      vfio: false,
      loaded: true,
    },
    {
      name: 'xhci_hcd',
      module: 'xhci_pci',
      match: [{ classValue: 0x0c0330, classMask: 0xffffff }],
      vfio: false,
      loaded: true,
    },
    {
      name: 'nvidia-gpu',
      module: 'i2c_nvidia_gpu',
      match: [{ vendor: NVIDIA, classValue: 0x0c8000, classMask: 0xffff00 }],
      vfio: false,
      loaded: true,
    },
    { name: 'mlx5_core', module: 'mlx5_core', match: [{ vendor: MELLANOX }], vfio: false, loaded: true },
    { name: 'nvme', module: 'nvme', match: [{ classValue: 0x010802, classMask: 0xffffff }], vfio: false, loaded: true },
    {
      name: 'pcieport',
      module: 'pcieportdrv',
      match: [{ classValue: 0x060400, classMask: 0xffff00 }],
      vfio: false,
      loaded: true,
    },
    { name: 'vfio-pci', module: 'vfio_pci', match: [], vfio: true, loaded: options.vfioLoaded },
    { name: 'nvgrace_gpu_vfio_pci', module: 'nvgrace_gpu_vfio_pci', match: [], vfio: true, loaded: false },
  ];
}

/** Intel's VMD driver (`drivers/pci/controller/vmd.c`), with the two server controllers of its ID table. */
export const VMD_DRIVER: DriverSpec = {
  name: 'vmd',
  module: 'vmd',
  match: [
    { vendor: INTEL, device: 0x201d },
    { vendor: INTEL, device: 0x28c0 },
  ],
  vfio: false,
  loaded: true,
};
