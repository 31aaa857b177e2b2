package lakehouse.validation;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.time.DateTimeException;
import java.time.Instant;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataType;

/**
 * Certifies a raw Kafka payload valid under a data contract and types it, in one pass
 * over its bytes.
 *
 * <p>A Spark UDF over the record's bytes. It returns the typed payload (a row shaped like
 * the contract's payload object: strings, longs, exact decimals, instants, days, nested
 * rows and lists) only when the payload certainly passes every error rule of the contract
 * and those are exactly the values the Python reference evaluator ({@code
 * lakehouse_assets.silver.validation.classify}) yields. {@code null} means "not certain":
 * the row then goes to the reference evaluator, which decides it, so a {@code null} is
 * never wrong, only slower. Everything this class does not understand exactly is
 * therefore a {@code null}.
 *
 * <p>The contract arrives as a JSON spec that {@code validation.py} writes from its plan:
 * the payload's field tree, its Spark type and its error rules. See {@code
 * _certifier_spec}.
 */
public final class PayloadCertifier implements UDF1<byte[], Row> {
  private static final long serialVersionUID = 1L;

  private final String spec;
  private transient Plan plan;

  public PayloadCertifier(String spec) {
    this.spec = spec;
    this.plan = Plan.parse(spec); // a malformed spec fails on the driver, not in a task
  }

  /**
   * The certifier of {@code spec} as a Spark UDF: {@code payload certify(binary value)},
   * its type the spec's {@code type}.
   *
   * <p>Built here, where javac picks the typed {@code udf(UDF1, DataType)} overload;
   * through Py4J the untyped {@code udf(Object, DataType)} may be chosen, which Spark
   * refuses.
   */
  public static UserDefinedFunction udf(String spec) {
    PayloadCertifier certifier = new PayloadCertifier(spec);
    return functions.udf(certifier, DataType.fromJson(certifier.plan.type));
  }

  @Override
  public Row call(byte[] value) {
    Plan current = plan;
    if (current == null) {
      current = Plan.parse(spec);
      plan = current;
    }
    return current.certify(value);
  }

  /** Thrown (without a stack trace) when a payload cannot be certified. */
  private static final class Reject extends RuntimeException {
    private static final long serialVersionUID = 1L;
    static final Reject INSTANCE = new Reject();

    private Reject() {
      super("not certified", null, false, false);
    }
  }

  private static final Object NULL = new Object(); // a JSON null (a missing value is null)
  private static final Pattern DECIMAL = Pattern.compile("-?[0-9]+(?:\\.[0-9]+)?");
  private static final long MIN_EPOCH_SECOND = -62135596800L; // 0001-01-01T00:00:00Z
  private static final long MAX_EPOCH_SECOND = 253402300799L; // 9999-12-31T23:59:59Z

  enum Kind {
    STRING,
    INTEGER,
    NUMBER,
    BOOLEAN,
    TIMESTAMP,
    DATE,
    OBJECT,
    ARRAY
  }

  /** A node of the payload: a property, or an array's items. */
  static final class Field {
    final String name;
    final Kind kind;
    final int maxIntegerDigits; // INTEGER: 18 (int64) or 9 (int32)
    final int precision; // NUMBER as decimal(p,s); -1 for a double
    final int scale;
    final boolean exact; // false: this class cannot certify a value of it (float32)
    final Field[] children; // OBJECT
    final Map<String, Integer> index = new HashMap<>();
    final Field item; // ARRAY

    Field(JsonNode node) {
      name = node.path("name").asText("");
      kind = Kind.valueOf(node.get("kind").asText().toUpperCase());
      maxIntegerDigits = node.path("int32").asBoolean(false) ? 9 : 18;
      JsonNode decimal = node.get("decimal");
      precision = decimal == null || decimal.isNull() ? -1 : decimal.get(0).asInt();
      scale = decimal == null || decimal.isNull() ? -1 : decimal.get(1).asInt();
      exact = !node.path("float32").asBoolean(false);
      JsonNode kids = node.get("children");
      children = new Field[kids == null ? 0 : kids.size()];
      for (int i = 0; i < children.length; i++) {
        children[i] = new Field(kids.get(i));
        index.put(children[i].name, i);
      }
      JsonNode itemNode = node.get("item");
      item = itemNode == null || itemNode.isNull() ? null : new Field(itemNode);
    }

    Field(Field[] topLevel) {
      name = "";
      kind = Kind.OBJECT;
      maxIntegerDigits = 18;
      precision = -1;
      scale = -1;
      exact = true;
      children = topLevel;
      item = null;
      for (int i = 0; i < children.length; i++) {
        index.put(children[i].name, i);
      }
    }

    /** The object whose children a path step below this field names. */
    Field container() {
      return kind == Kind.ARRAY ? item : this;
    }
  }

  /** A dotted column path resolved to child positions (through arrays' items). */
  static final class Path {
    final Field[] chain;
    final int[] positions;

    Path(Field root, String dotted) {
      String[] names = dotted.split("\\.");
      chain = new Field[names.length];
      positions = new int[names.length];
      Field parent = root;
      for (int i = 0; i < names.length; i++) {
        Field container = parent.container();
        Integer position = container == null ? null : container.index.get(names[i]);
        if (position == null) {
          throw new IllegalArgumentException("unknown column in spec: " + dotted);
        }
        positions[i] = position;
        chain[i] = container.children[position];
        parent = chain[i];
      }
    }

    Field leaf() {
      return chain[chain.length - 1];
    }

    /** Every value of the column where its parents exist; null = missing. */
    void occurrences(Object[] object, int depth, List<Object> out) {
      Object value = object[positions[depth]];
      if (depth == chain.length - 1) {
        out.add(value);
      } else if (value instanceof ArrayList) {
        for (Object element : (ArrayList<?>) value) {
          if (element instanceof Object[]) {
            occurrences((Object[]) element, depth + 1, out);
          }
        }
      } else if (value instanceof Object[]) {
        occurrences((Object[]) value, depth + 1, out);
      }
    }

    /** The value outside arrays (null when missing or a parent is not there). */
    Object single(Object[] object) {
      Object node = object;
      for (int position : positions) {
        if (!(node instanceof Object[])) {
          return null;
        }
        node = ((Object[]) node)[position];
      }
      return node;
    }
  }

  abstract static class Rule {
    abstract boolean passes(Object[] document);
  }

  /** A rule over one column, checked at every occurrence. */
  abstract static class ColumnRule extends Rule {
    final Path path;

    ColumnRule(Path path) {
      this.path = path;
    }

    @Override
    boolean passes(Object[] document) {
      List<Object> values = new ArrayList<>(4);
      path.occurrences(document, 0, values);
      for (Object value : values) {
        if (!holds(value)) {
          return false;
        }
      }
      return true;
    }

    /** Whether the rule holds for one occurrence (missing and null values pass). */
    boolean holds(Object value) {
      return value == null || value == NULL || present(value);
    }

    /** Whether the rule holds for a present, non-null value. */
    abstract boolean present(Object value);
  }

  static final class Plan {
    final Field root;
    final Rule[] rules;
    final String type;
    final JsonFactory json = new JsonFactory();

    Plan(Field root, Rule[] rules, String type) {
      this.root = root;
      this.rules = rules;
      this.type = type;
    }

    static Plan parse(String spec) {
      JsonNode node;
      try {
        node = new ObjectMapper().readTree(spec);
      } catch (IOException e) {
        throw new IllegalArgumentException("malformed certifier spec", e);
      }
      JsonNode fieldNodes = node.get("fields");
      Field[] fields = new Field[fieldNodes.size()];
      for (int i = 0; i < fields.length; i++) {
        fields[i] = new Field(fieldNodes.get(i));
      }
      Field root = new Field(fields);
      JsonNode ruleNodes = node.get("rules");
      Rule[] rules = new Rule[ruleNodes.size()];
      for (int i = 0; i < rules.length; i++) {
        rules[i] = rule(root, ruleNodes.get(i));
      }
      return new Plan(root, rules, node.get("type").toString());
    }

    /** The typed payload, or null when it is not certainly valid. */
    Row certify(byte[] value) {
      if (value == null || !wellFormedText(value)) {
        return null;
      }
      try (JsonParser parser = json.createParser(value)) {
        if (parser.nextToken() != JsonToken.START_OBJECT) {
          return null;
        }
        Object[] document = readObject(parser, root);
        if (parser.nextToken() != null) {
          return null; // trailing content
        }
        for (Rule rule : rules) {
          if (!rule.passes(document)) {
            return null;
          }
        }
        return row(document, root);
      } catch (IOException | RuntimeException e) { // Reject, a parse error, a wrong shape
        return null;
      }
    }
  }

  // Typing: the values Spark stores for the payload's struct -----------------------------------

  static Row row(Object[] slots, Field object) {
    Object[] values = new Object[slots.length];
    for (int i = 0; i < slots.length; i++) {
      values[i] = typed(slots[i], object.children[i]);
    }
    return RowFactory.create(values);
  }

  static Object typed(Object value, Field field) {
    if (value == null || value == NULL) {
      return null;
    }
    switch (field.kind) {
      case OBJECT:
        return row((Object[]) value, field);
      case ARRAY:
        {
          ArrayList<?> elements = (ArrayList<?>) value;
          List<Object> out = new ArrayList<>(elements.size());
          for (Object element : elements) {
            out.add(typed(element, field.item));
          }
          return out;
        }
      case INTEGER:
        {
          BigDecimal number = (BigDecimal) value;
          return field.maxIntegerDigits == 9
              ? (Object) number.intValueExact()
              : (Object) number.longValueExact();
        }
      case NUMBER:
        {
          BigDecimal number = (BigDecimal) value;
          if (field.precision >= 0) {
            return number.setScale(field.scale, RoundingMode.UNNECESSARY);
          }
          // Correctly rounded from the exact value, as the reference's float() is.
          return Double.parseDouble(number.toString());
        }
      default:
        return value; // String, Boolean, Instant, LocalDate
    }
  }

  /**
   * Strict UTF-8 (no overlong forms, no encoded surrogates, at most U+10FFFF), no BOM, no
   * raw control character but JSON whitespace, and no escaped surrogate (Python's JSON
   * reader lets lone ones through; pairs are rare enough to leave to it as well).
   */
  static boolean wellFormedText(byte[] b) {
    int n = b.length;
    if (n == 0) {
      return false;
    }
    if (n >= 3 && (b[0] & 0xFF) == 0xEF && (b[1] & 0xFF) == 0xBB && (b[2] & 0xFF) == 0xBF) {
      return false;
    }
    int i = 0;
    while (i < n) {
      int c = b[i] & 0xFF;
      if (c < 0x80) {
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
          return false;
        }
        if (c == '\\' && i + 3 < n && b[i + 1] == 'u' && (b[i + 2] == 'd' || b[i + 2] == 'D')) {
          int d = b[i + 3];
          if (d == '8' || d == '9' || (d >= 'a' && d <= 'b') || (d >= 'A' && d <= 'B')) {
            return false;
          }
        }
        i += c == '\\' && i + 1 < n ? 2 : 1; // an escaped backslash is not an escape's start
        continue;
      }
      int need;
      int low = 0x80;
      int high = 0xBF;
      if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
      } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) {
          low = 0xA0;
        } else if (c == 0xED) {
          high = 0x9F;
        }
      } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) {
          low = 0x90;
        } else if (c == 0xF4) {
          high = 0x8F;
        }
      } else {
        return false;
      }
      if (i + need >= n) {
        return false;
      }
      int second = b[i + 1] & 0xFF;
      if (second < low || second > high) {
        return false;
      }
      for (int k = 2; k <= need; k++) {
        int next = b[i + k] & 0xFF;
        if (next < 0x80 || next > 0xBF) {
          return false;
        }
      }
      i += need + 1;
    }
    return true;
  }

  // Reading: the contract's fields, each checked against its type as it is read --------------

  /** The object's known fields by position (null: missing, NULL: JSON null). */
  static Object[] readObject(JsonParser parser, Field field) throws IOException {
    Object[] slots = new Object[field.children.length];
    JsonToken token;
    while ((token = parser.nextToken()) == JsonToken.FIELD_NAME) {
      Integer position = field.index.get(parser.currentName());
      JsonToken next = parser.nextToken();
      if (position == null) {
        parser.skipChildren(); // still tokenised, so still checked for syntax
        continue;
      }
      if (slots[position] != null) {
        throw Reject.INSTANCE; // a duplicate key: which one wins is the reference's call
      }
      Field child = field.children[position];
      slots[position] = next == JsonToken.VALUE_NULL ? NULL : read(parser, next, child);
    }
    if (token != JsonToken.END_OBJECT) {
      throw Reject.INSTANCE;
    }
    return slots;
  }

  /** A present, non-null value of ``field``, or a Reject when it is not certainly typed. */
  static Object read(JsonParser parser, JsonToken token, Field field) throws IOException {
    switch (field.kind) {
      case OBJECT:
        if (token != JsonToken.START_OBJECT) {
          throw Reject.INSTANCE;
        }
        return readObject(parser, field);
      case ARRAY:
        if (token != JsonToken.START_ARRAY) {
          throw Reject.INSTANCE;
        }
        ArrayList<Object> elements = new ArrayList<>();
        JsonToken element;
        while ((element = parser.nextToken()) != JsonToken.END_ARRAY) {
          if (element == null || element == JsonToken.VALUE_NULL) {
            throw Reject.INSTANCE;
          }
          elements.add(read(parser, element, field.item));
        }
        return elements;
      case STRING:
        if (token != JsonToken.VALUE_STRING) {
          throw Reject.INSTANCE;
        }
        return parser.getText();
      case BOOLEAN:
        if (token == JsonToken.VALUE_TRUE) {
          return Boolean.TRUE;
        }
        if (token == JsonToken.VALUE_FALSE) {
          return Boolean.FALSE;
        }
        throw Reject.INSTANCE;
      case INTEGER:
        {
          if (token != JsonToken.VALUE_NUMBER_INT) {
            throw Reject.INSTANCE;
          }
          String text = parser.getText();
          int digits = text.length() - (text.charAt(0) == '-' ? 1 : 0);
          if (digits > field.maxIntegerDigits) {
            throw Reject.INSTANCE;
          }
          return new BigDecimal(text);
        }
      case NUMBER:
        {
          if (!field.exact
              || (token != JsonToken.VALUE_NUMBER_INT
                  && token != JsonToken.VALUE_NUMBER_FLOAT
                  && token != JsonToken.VALUE_STRING)) {
            throw Reject.INSTANCE;
          }
          String text = parser.getText();
          if (!DECIMAL.matcher(text).matches() || !fits(text, field)) {
            throw Reject.INSTANCE;
          }
          return new BigDecimal(text);
        }
      case TIMESTAMP:
        {
          Instant instant = token == JsonToken.VALUE_STRING ? timestamp(parser.getText()) : null;
          if (instant == null) {
            throw Reject.INSTANCE;
          }
          return instant;
        }
      case DATE:
        {
          LocalDate day = token == JsonToken.VALUE_STRING ? date(parser.getText()) : null;
          if (day == null) {
            throw Reject.INSTANCE;
          }
          return day;
        }
      default:
        throw Reject.INSTANCE;
    }
  }

  /** Whether the column holds a plain decimal text: exactly, or as a finite double. */
  static boolean fits(String text, Field field) {
    if (field.precision < 0) {
      return Double.isFinite(Double.parseDouble(text));
    }
    int start = text.charAt(0) == '-' ? 1 : 0;
    int point = text.indexOf('.');
    int end = point < 0 ? text.length() : point;
    int first = start;
    while (first < end - 1 && text.charAt(first) == '0') {
      first++;
    }
    int integerDigits = end - first;
    if (integerDigits == 1 && text.charAt(first) == '0') {
      integerDigits = 0;
    }
    if (integerDigits > field.precision - field.scale) {
      return false;
    }
    if (point < 0) {
      return true;
    }
    int last = text.length() - 1;
    while (last > point && text.charAt(last) == '0') {
      last--;
    }
    return last - point <= field.scale;
  }

  private static int number(String s, int from, int to) {
    int value = 0;
    for (int i = from; i < to; i++) {
      char c = s.charAt(i);
      if (c < '0' || c > '9') {
        return -1;
      }
      value = value * 10 + (c - '0');
    }
    return value;
  }

  /**
   * The instant of {@code YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+HH:MM|-HH:MM)}, a real one in years
   * 1..9999 UTC (the offset's hours at most 23, as the reference's); null otherwise.
   */
  static Instant timestamp(String s) {
    int n = s.length();
    if (n < 20
        || s.charAt(4) != '-'
        || s.charAt(7) != '-'
        || s.charAt(10) != 'T'
        || s.charAt(13) != ':'
        || s.charAt(16) != ':') {
      return null;
    }
    int year = number(s, 0, 4);
    int month = number(s, 5, 7);
    int day = number(s, 8, 10);
    int hour = number(s, 11, 13);
    int minute = number(s, 14, 16);
    int second = number(s, 17, 19);
    if (year <= 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) {
      return null;
    }
    int i = 19;
    int nanos = 0;
    if (s.charAt(i) == '.') {
      int start = ++i;
      while (i < n && s.charAt(i) >= '0' && s.charAt(i) <= '9') {
        i++;
      }
      int digits = i - start;
      if (digits < 1 || digits > 6) {
        return null;
      }
      nanos = number(s, start, i);
      for (int k = digits; k < 9; k++) {
        nanos *= 10;
      }
    }
    if (i >= n) {
      return null;
    }
    int offsetSeconds;
    char sign = s.charAt(i);
    if (sign == 'Z') {
      if (i + 1 != n) {
        return null;
      }
      offsetSeconds = 0;
    } else if (sign == '+' || sign == '-') {
      if (i + 6 != n || s.charAt(i + 3) != ':') {
        return null;
      }
      int hours = number(s, i + 1, i + 3);
      int minutes = number(s, i + 4, i + 6);
      if (hours < 0 || hours > 23 || minutes < 0 || minutes > 59) {
        return null;
      }
      offsetSeconds = (hours * 3600 + minutes * 60) * (sign == '-' ? -1 : 1);
    } else {
      return null;
    }
    try {
      long epoch =
          LocalDateTime.of(year, month, day, hour, minute, second, nanos)
                  .toEpochSecond(ZoneOffset.UTC)
              - offsetSeconds;
      if (epoch < MIN_EPOCH_SECOND || epoch > MAX_EPOCH_SECOND) {
        return null;
      }
      return Instant.ofEpochSecond(epoch, nanos);
    } catch (DateTimeException e) {
      return null;
    }
  }

  /** The day of {@code YYYY-MM-DD}, a real one in years 1..9999; null otherwise. */
  static LocalDate date(String s) {
    if (s.length() != 10 || s.charAt(4) != '-' || s.charAt(7) != '-') {
      return null;
    }
    int year = number(s, 0, 4);
    int month = number(s, 5, 7);
    int day = number(s, 8, 10);
    if (year <= 0 || month < 0 || day < 0) {
      return null;
    }
    try {
      return LocalDate.of(year, month, day);
    } catch (DateTimeException e) {
      return null;
    }
  }

  // Rules -----------------------------------------------------------------------------------

  /** The exact value of a number, or of a string holding a plain decimal; null otherwise. */
  static BigDecimal exact(Object value) {
    if (value instanceof BigDecimal) {
      return (BigDecimal) value;
    }
    if (value instanceof String && DECIMAL.matcher((String) value).matches()) {
      return new BigDecimal((String) value);
    }
    return null;
  }

  static boolean compare(BigDecimal number, String operator, BigDecimal[] bound) {
    int c = number.compareTo(bound[0]);
    switch (operator) {
      case "between":
        return c >= 0 && number.compareTo(bound[1]) <= 0;
      case "==":
        return c == 0;
      case "!=":
        return c != 0;
      case ">":
        return c > 0;
      case ">=":
        return c >= 0;
      case "<":
        return c < 0;
      case "<=":
        return c <= 0;
      default:
        return false;
    }
  }

  static BigDecimal[] bound(JsonNode node) {
    if (node == null || node.isNull()) {
      return null;
    }
    if (node.isArray()) {
      return new BigDecimal[] {
        new BigDecimal(node.get(0).asText()), new BigDecimal(node.get(1).asText())
      };
    }
    return new BigDecimal[] {new BigDecimal(node.asText())};
  }

  static Rule rule(Field root, JsonNode node) {
    String kind = node.get("kind").asText();
    switch (kind) {
      case "required":
        return new ColumnRule(new Path(root, node.get("column").asText())) {
          @Override
          boolean holds(Object value) {
            return value != null && value != NULL;
          }

          @Override
          boolean present(Object value) {
            return true;
          }
        };
      case "type":
        // Reading checked every known field's type already.
        return new Rule() {
          @Override
          boolean passes(Object[] document) {
            return true;
          }
        };
      case "allowed_values":
        {
          Path path = new Path(root, node.get("column").asText());
          List<String> strings = new ArrayList<>();
          node.path("strings").forEach(v -> strings.add(v.asText()));
          List<BigDecimal> numbers = new ArrayList<>();
          node.path("numbers").forEach(v -> numbers.add(new BigDecimal(v.asText())));
          Kind leaf = path.leaf().kind;
          return new ColumnRule(path) {
            @Override
            boolean present(Object value) {
              if (leaf == Kind.STRING && value instanceof String) {
                return strings.contains(value);
              }
              if (leaf == Kind.INTEGER && value instanceof BigDecimal) {
                for (BigDecimal allowed : numbers) {
                  if (allowed.compareTo((BigDecimal) value) == 0) {
                    return true;
                  }
                }
              }
              return false;
            }
          };
        }
      case "pattern":
        {
          Path path = new Path(root, node.get("column").asText());
          JsonNode regex = node.get("regex");
          Pattern pattern =
              regex == null || regex.isNull() ? null : Pattern.compile(regex.asText());
          return new ColumnRule(path) {
            @Override
            boolean present(Object value) {
              return pattern != null
                  && path.leaf().kind == Kind.STRING
                  && pattern.matcher((String) value).find();
            }
          };
        }
      case "comparison":
        {
          Path path = new Path(root, node.get("column").asText());
          String operator = node.get("operator").asText();
          BigDecimal[] bound = bound(node.get("bound"));
          return new ColumnRule(path) {
            @Override
            boolean present(Object value) {
              if (value instanceof Boolean
                  || value instanceof Object[]
                  || value instanceof ArrayList) {
                return false; // the reference would not compare these: not certain
              }
              BigDecimal number = exact(value);
              return number == null || (bound != null && compare(number, operator, bound));
            }
          };
        }
      case "length":
        {
          Path path = new Path(root, node.get("column").asText());
          String operator = node.get("operator").asText();
          BigDecimal[] bound = bound(node.get("bound"));
          return new ColumnRule(path) {
            @Override
            boolean present(Object value) {
              long length;
              if (value instanceof String) {
                length = ((String) value).codePointCount(0, ((String) value).length());
              } else if (value instanceof ArrayList) {
                length = ((ArrayList<?>) value).size();
              } else {
                return false;
              }
              return bound != null && compare(BigDecimal.valueOf(length), operator, bound);
            }
          };
        }
      case "sum_equals":
        return sumEquals(root, node);
      case "lines_sum_to":
        return linesSumTo(root, node);
      default:
        // A rule this class does not know is never certain.
        return new Rule() {
          @Override
          boolean passes(Object[] document) {
            return false;
          }
        };
    }
  }

  static Rule sumEquals(Field root, JsonNode node) {
    List<Path> terms = new ArrayList<>();
    node.get("terms").forEach(t -> terms.add(new Path(root, t.asText())));
    Path equals = new Path(root, node.get("equals").asText());
    BigDecimal tolerance = new BigDecimal(node.get("tolerance").asText());
    return new Rule() {
      @Override
      boolean passes(Object[] document) {
        BigDecimal total = BigDecimal.ZERO;
        for (Path term : terms) {
          BigDecimal number = numberOrNull(term.single(document));
          if (number == null) {
            return true; // a missing input: the rule does not apply
          }
          total = total.add(number);
        }
        BigDecimal expected = numberOrNull(equals.single(document));
        return expected == null || total.subtract(expected).abs().compareTo(tolerance) <= 0;
      }
    };
  }

  /** The exact number of a present value; null when missing, null, or not a number. */
  static BigDecimal numberOrNull(Object value) {
    return value == null || value == NULL ? null : exact(value);
  }

  static Rule linesSumTo(Field root, JsonNode node) {
    Path lines = new Path(root, node.get("lines").asText());
    Path equals = new Path(root, node.get("equals").asText());
    List<Path> parts = new ArrayList<>();
    for (String part : new String[] {"quantity", "unit_price", "discount"}) {
      JsonNode name = node.get(part);
      if (name != null && !name.isNull()) {
        parts.add(new Path(lines.leaf(), name.asText()));
      }
    }
    Field target = equals.leaf();
    int scale = target.kind == Kind.INTEGER ? 0 : target.kind == Kind.NUMBER ? target.scale : -1;
    BigDecimal tolerance = new BigDecimal(node.get("tolerance").asText());
    return new Rule() {
      @Override
      boolean passes(Object[] document) {
        BigDecimal expected = numberOrNull(equals.single(document));
        Object items = lines.single(document);
        if (expected == null || !(items instanceof ArrayList)) {
          return true; // a missing input: the rule does not apply
        }
        BigDecimal total = BigDecimal.ZERO;
        for (Object line : (ArrayList<?>) items) {
          BigDecimal amount = null;
          for (int k = 0; k < parts.size(); k++) {
            Object raw = parts.get(k).single((Object[]) line);
            if (raw == null || raw == NULL) {
              return true; // a line without a part: the rule does not apply
            }
            BigDecimal number = exact(raw);
            if (number == null) {
              throw Reject.INSTANCE;
            }
            if (k == 0) {
              amount = number;
            } else if (k == 1) {
              amount = amount.multiply(number);
            } else {
              amount = amount.multiply(BigDecimal.ONE.subtract(number));
            }
          }
          total = total.add(amount);
        }
        if (scale >= 0) {
          total = total.setScale(scale, RoundingMode.HALF_UP);
        }
        return total.subtract(expected).abs().compareTo(tolerance) <= 0;
      }
    };
  }
}
