/**
 * @esp-fleet/device-emulator — firmware-style emulated ESP32 devices (SQAL stations, fridges, feeding
 * stations) over any `DeviceTransport`, and a fleet runner with one MQTT session per device.
 */
export type {
  DeviceTransport,
  ConnectOptions,
  LinkEvent,
  LinkHandler,
  CommandHandler,
  PublishChannel,
  PublishOptions,
  WillMessage,
  DeviceAddressInfo,
  TransportFactory,
} from "./transport.ts";
export {
  EmulatedDevice,
  DEFAULT_FIRMWARE_OPTIONS,
  DEFAULT_PROFILES,
  type DeviceSpec,
  type FirmwareOptions,
  type DeviceDeps,
  type DeviceCounters,
  type DeviceProfiles,
} from "./firmware.ts";
export { Scheduler, type TimerTarget } from "./scheduler.ts";
export { MemoryStateStore, FileStateStore, type DeviceState, type DeviceStateStore } from "./state-store.ts";
export { MemoryTransport, type RecordedPublish } from "./transports/memory.ts";
export { MqttTransport, mqttTransportFactory, type MqttTransportOptions } from "./transports/mqtt.ts";
export { SessionTransport } from "./transports/session.ts";
export {
  startFleet,
  runDevice,
  fleetSpecs,
  loadCredentialsFile,
  passwordFor,
  DEVICE_ID_PREFIX,
  DEFAULT_SITES,
  type Fleet,
  type FleetOptions,
  type FleetStats,
  type RunDeviceOptions,
} from "./fleet.ts";
export * from "./profiles.ts";
export { FridgeModel, type FridgeValues } from "./models/fridge.ts";
export { measureSample, drawTier, gainFactor, integrationMs, type SqalMeasurement } from "./models/sqal.ts";
export { FeedingLot, lotCode, lotNumber, nextFeedingAt, inspectionProfileFor, type FeedingValues } from "./models/feeding.ts";
