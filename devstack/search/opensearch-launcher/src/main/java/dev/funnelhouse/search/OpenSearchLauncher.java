package dev.funnelhouse.search;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.cluster.service.ClusterService;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * Runs one OpenSearch node in this JVM, for local runs and tests (never production).
 *
 * <p>The official distribution cannot be downloaded here, but the server and its modules are on Maven
 * Central: this class is the part of {@code Bootstrap} we need. Arguments are {@code key=value}
 * node settings (path.home, path.data, http.port, ...). SIGTERM closes the node cleanly.
 */
public final class OpenSearchLauncher {

    /** The modules the indexer relies on: HTTP, and analysis-common for the {@code cjk} analyzer. */
    private static final List<Class<? extends Plugin>> MODULES =
            List.of(Netty4Plugin.class, CommonAnalysisPlugin.class);

    private OpenSearchLauncher() {}

    /** {@code Node}'s plugin constructor is protected; a subclass is the supported way in (as test frameworks do). */
    static final class EmbeddedNode extends Node {
        EmbeddedNode(Environment environment) {
            super(environment, MODULES, true);
        }

        @Override
        protected void configureNodeAndClusterIdStateListener(ClusterService clusterService) {
            // Bootstrap's hook for the node-id logging pattern; without Bootstrap there is nothing to configure.
        }
    }

    public static void main(String[] args) throws Exception {
        Settings.Builder builder = Settings.builder();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("expected key=value, got " + arg);
            }
            builder.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        Settings settings = builder.build();
        String nodeName = settings.get("node.name", "funnelhouse");
        Path configPath = Path.of(settings.get("path.home")).resolve("config");
        Environment environment =
                InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), configPath, () -> nodeName);

        LogConfigurator.registerErrorListener();
        LogConfigurator.setNodeName(nodeName);
        LogConfigurator.configureWithoutConfig(environment.settings());

        Node node = new EmbeddedNode(environment);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(20, java.util.concurrent.TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "opensearch-launcher-shutdown"));
        node.start();
        System.out.println("opensearch-launcher: node started");
        stopped.await();
    }
}
