// Run by TestProxy (jdbc): pgjdbc through the pooler, printing where each
// statement ran. Usage: java -cp postgresql.jar Where.java PORT DATABASE USER PASSWORD
import java.sql.*;

public class Where {
    static String where(PreparedStatement ps) throws SQLException {
        try (ResultSet rs = ps.executeQuery()) {
            rs.next();
            return rs.getString(1);
        }
    }

    public static void main(String[] args) throws Exception {
        // prepareThreshold=1: named server-side statements from the first
        // execution on, which the pooler must prepare again on whichever
        // standby a later execution reaches.
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/" + args[1] + "?sslmode=disable&prepareThreshold=1";
        try (Connection c = DriverManager.getConnection(url, args[2], args[3])) {
            try (PreparedStatement ps = c.prepareStatement("SELECT host(inet_server_addr()) WHERE ? = ?")) {
                for (int i = 0; i < 8; i++) {
                    ps.setInt(1, i);
                    ps.setInt(2, i);
                    System.out.println("read " + where(ps));
                }
            }
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO routed (at) VALUES (inet_server_addr()) RETURNING host(at)")) {
                System.out.println("write " + where(ps));
            }
            c.setAutoCommit(false);
            try (PreparedStatement ps = c.prepareStatement("SELECT host(inet_server_addr())")) {
                System.out.println("block " + where(ps));
            }
            c.commit();
            c.setAutoCommit(true);
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SHOW application_name")) {
                rs.next();
                System.out.println("application_name " + rs.getString(1).replace(' ', '_'));
            }
        }
    }
}
