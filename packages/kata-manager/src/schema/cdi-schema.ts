/**
 * The official CDI JSON schema, verbatim as data (the bundle carries it; no file is read at run time).
 * Copied from cncf-tags/container-device-interface `schema/schema.json` and `schema/defs.json`
 * (Apache-2.0), snapshot 05ae4b5, last schema change f32e9aa: see SOURCE.txt beside this file. The
 * verbatim JSON copies are in test/fixtures/cdi-schema/, and a test keeps them equal to these objects.
 * Do not fix the `"ref"` typo in containerEdits.env: a real `$ref` would reject valid specs
 * (docs/facts/cdi.md#the-schema-and-its-typo).
 */

/** `schema/schema.json`: it refers to `defs.json#/definitions/...`. */
export const CDI_SCHEMA = {
  description: 'Configuration Schema for the Container Device Interface',
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  properties: {
    cdiVersion: {
      description: 'The version of the Container Device Interface Specification that the document complies with',
      type: 'string',
    },
    kind: {
      description: "The kind of the device usually of the form 'vendor.com/device'",
      type: 'string',
    },
    annotations: {
      $ref: 'defs.json#/definitions/annotations',
    },
    devices: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: {
            description: 'The name of the device',
            type: 'string',
          },
          annotations: {
            $ref: 'defs.json#/definitions/annotations',
          },
          containerEdits: {
            $ref: 'defs.json#/definitions/containerEdits',
          },
        },
        required: ['name', 'containerEdits'],
      },
    },
    containerEdits: {
      $ref: 'defs.json#/definitions/containerEdits',
    },
  },
  required: ['cdiVersion', 'kind', 'devices'],
};

/** `schema/defs.json`, registered under the id `defs.json`. */
export const CDI_SCHEMA_DEFS = {
  description: 'Definitions used throughout the Container Device Interface Specification',
  definitions: {
    uint32: {
      type: 'integer',
      minimum: 0,
      maximum: 4294967295,
    },
    int64: {
      type: 'integer',
      minimum: -9223372036854776000,
      maximum: 9223372036854776000,
    },
    ArrayOfStrings: {
      type: 'array',
      items: {
        type: 'string',
      },
    },
    FileName: {
      type: 'string',
    },
    FilePath: {
      type: 'string',
    },
    Env: {
      $ref: '#/definitions/ArrayOfStrings',
    },
    InterfaceName: {
      type: 'string',
    },
    mapStringString: {
      type: 'object',
      patternProperties: {
        '.{1,}': {
          type: 'string',
        },
      },
    },
    DeviceNode: {
      type: 'object',
      properties: {
        path: {
          $ref: '#/definitions/FilePath',
        },
        hostPath: {
          $ref: '#/definitions/FilePath',
        },
        permissions: {
          type: 'string',
        },
        type: {
          type: 'string',
        },
        major: {
          $ref: '#/definitions/int64',
        },
        minor: {
          $ref: '#/definitions/int64',
        },
        uid: {
          $ref: '#/definitions/uint32',
        },
        gid: {
          $ref: '#/definitions/uint32',
        },
      },
      required: ['path'],
    },
    Mount: {
      type: 'object',
      properties: {
        hostPath: {
          $ref: '#/definitions/FilePath',
        },
        containerPath: {
          $ref: '#/definitions/FilePath',
        },
        options: {
          $ref: '#/definitions/ArrayOfStrings',
        },
        type: {
          type: 'string',
        },
      },
      required: ['hostPath', 'containerPath'],
    },
    Hook: {
      type: 'object',
      properties: {
        hookName: {
          type: 'string',
        },
        path: {
          $ref: '#/definitions/FilePath',
        },
        args: {
          $ref: '#/definitions/ArrayOfStrings',
        },
        env: {
          $ref: '#/definitions/ArrayOfStrings',
        },
        timeout: {
          $ref: '#/definitions/uint32',
        },
      },
      required: ['hookName', 'path'],
    },
    LinuxNetDevice: {
      type: 'object',
      properties: {
        hostInterfaceName: {
          $ref: '#/definitions/InterfaceName',
        },
        name: {
          $ref: '#/definitions/InterfaceName',
        },
      },
      required: ['hostInterfaceName', 'name'],
    },
    containerEdits: {
      type: 'object',
      properties: {
        env: {
          type: 'array',
          items: {
            ref: '#definitions/Env',
          },
        },
        deviceNodes: {
          type: 'array',
          items: {
            $ref: '#/definitions/DeviceNode',
          },
        },
        netDevices: {
          type: 'array',
          items: {
            $ref: '#/definitions/LinuxNetDevice',
          },
        },
        mounts: {
          type: 'array',
          items: {
            $ref: '#/definitions/Mount',
          },
        },
        hooks: {
          type: 'array',
          items: {
            $ref: '#/definitions/Hook',
          },
        },
        intelRdt: {
          type: 'object',
          properties: {
            closID: {
              $ref: '#/definitions/FileName',
            },
            l3CacheSchema: {
              type: 'string',
            },
            memBwSchema: {
              type: 'string',
            },
            schemata: {
              $ref: '#/definitions/ArrayOfStrings',
            },
            enableMonitoring: {
              type: 'boolean',
            },
          },
        },
        additionalGids: {
          type: 'array',
          items: {
            $ref: '#/definitions/uint32',
          },
        },
      },
    },
    annotations: {
      $ref: '#/definitions/mapStringString',
    },
  },
};
