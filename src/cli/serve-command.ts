import { createCommandLogger } from "../observability/logger.js";
import { startServer } from "../server.js";
import { describeConfigFile, loadCliConfig } from "./config-options.js";

/** `switchboard serve`: runs until SIGTERM or SIGINT, then drains within the grace period. */
export async function serveCommand(args: string[]): Promise<number> {
  const { config, file } = loadCliConfig(args);
  const logger = createCommandLogger(config.log_level, config.log_format);
  // Which file was read is the first thing to know when a setting seems ignored.
  logger.info({ configFile: file.path ?? null, configFrom: file.from ?? null }, describeConfigFile(file));
  const server = await startServer(config, { logger });
  await new Promise<void>((resolve) => {
    const onSignal = (signal: string) => {
      logger.info({ signal, graceMs: config.shutdown_grace_ms }, "shutting down");
      server.stop().then(resolve, (err) => {
        logger.error({ err }, "error during shutdown");
        resolve();
      });
    };
    process.once("SIGTERM", () => onSignal("SIGTERM"));
    process.once("SIGINT", () => onSignal("SIGINT"));
  });
  logger.info("stopped");
  return 0;
}
