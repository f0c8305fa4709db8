package org.c2c.lakehouse.udf;

import org.apache.commons.text.similarity.JaroWinklerSimilarity;
import org.apache.spark.sql.api.java.UDF2;

/**
 * Jaro-Winkler similarity (0 to 1) of two strings, null when either is null.
 *
 * <p>The comparison of every candidate pair's names runs inside the JVM, next to the rest of the pair's
 * comparison levels, so no row leaves Spark for a Python worker. The arithmetic is Apache Commons Text's
 * (prefix scale 0.1 over at most four characters), a library Spark itself ships, so this class adds no
 * dependency. Registered by lakehouse.er.comparisons as the SQL function lakehouse_jaro_winkler.
 */
public final class JaroWinkler implements UDF2<String, String, Float> {
    private static final long serialVersionUID = 1L;
    private static final JaroWinklerSimilarity SIMILARITY = new JaroWinklerSimilarity();

    @Override
    public Float call(String left, String right) {
        if (left == null || right == null) {
            return null;
        }
        return SIMILARITY.apply(left, right).floatValue();
    }
}
