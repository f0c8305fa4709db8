package org.c2c.lakehouse.bi;

import java.util.Set;

import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.plans.logical.Command;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.execution.command.SetCommand;

import scala.Function1;
import scala.runtime.BoxedUnit;

/**
 * A session extension that makes a Spark SQL endpoint read-only: queries, and the commands that only show or
 * describe, pass; every other command (CREATE, INSERT, MERGE, DELETE, DROP, ALTER, CACHE, ADD JAR, OPTIMIZE,
 * VACUUM, ...) and every SET that changes a setting is refused before it runs.
 *
 * <p>The BI endpoint (lakehouse serve-bi) runs the Spark Thrift server with this extension and with SQL on
 * files switched off, so a BI user can read the gold and public tables its catalog holds and nothing else: no
 * table can be registered over a restricted zone's files, no path read directly, no setting changed to allow
 * it. Enabled by spark.sql.extensions=org.c2c.lakehouse.bi.ReadOnlyGuard.
 */
public final class ReadOnlyGuard implements Function1<SparkSessionExtensions, BoxedUnit> {
    /** Commands (by class name) that read or describe only. */
    private static final Set<String> ALLOWED_COMMANDS = Set.of(
            "SetCatalogAndNamespace",
            "SetNamespaceCommand",
            "ExplainCommand",
            "ResetCommand");

    @Override
    public BoxedUnit apply(SparkSessionExtensions extensions) {
        Function1<LogicalPlan, BoxedUnit> check = ReadOnlyGuard::check;
        extensions.injectCheckRule(session -> check);
        return BoxedUnit.UNIT;
    }

    static BoxedUnit check(LogicalPlan plan) {
        if (!(plan instanceof Command)) {
            return BoxedUnit.UNIT;
        }
        String name = plan.getClass().getSimpleName();
        if (plan instanceof SetCommand set) {
            // SET and SET key list settings; SET key=value would change one (say, re-enable SQL on files).
            if (set.kv().isDefined() && set.kv().get()._2().isDefined()) {
                throw refused("SET " + set.kv().get()._1() + "=...");
            }
            return BoxedUnit.UNIT;
        }
        if (name.startsWith("Show") || name.startsWith("Describe") || ALLOWED_COMMANDS.contains(name)) {
            return BoxedUnit.UNIT;
        }
        throw refused(name);
    }

    private static UnsupportedOperationException refused(String what) {
        return new UnsupportedOperationException(
                "this endpoint is read-only (lakehouse serve-bi): " + what + " is refused; it serves queries "
                        + "and SHOW/DESCRIBE on the gold and public tables only");
    }
}
