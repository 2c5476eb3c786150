import { listStaff } from '../api';
import { roleLabel } from '../format';
import { useApi } from '../use-api';
import { LoadedContent } from './loading';
import { LocalTime } from './local-time';

interface StaffListProps {
  /** Accessible name of the table, e.g. "Colleagues". */
  caption: string;
  /** The signed-in account, marked "(you)" in the list. */
  selfId?: string;
}

export function StaffList({ caption, selfId }: StaffListProps) {
  const { result, reload } = useApi(listStaff);
  return (
    <LoadedContent result={result} what={caption.toLowerCase()} onRetry={reload}>
      {({ staff }) =>
        staff.length === 0 ? (
          <p className="empty-state">No staff accounts yet.</p>
        ) : (
          <div className="table-scroll" role="region" aria-label={caption} tabIndex={0}>
            <table className="table">
              <caption className="visually-hidden">{caption}</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Email</th>
                  <th scope="col">Role</th>
                  <th scope="col">Two-step verification</th>
                  <th scope="col">Account created</th>
                </tr>
              </thead>
              <tbody>
                {staff.map((member) => (
                  <tr key={member.id}>
                    <th scope="row">
                      {member.displayName}
                      {member.id === selfId ? <span className="muted"> (you)</span> : null}
                    </th>
                    <td className="break">{member.email}</td>
                    <td>{roleLabel(member.role)}</td>
                    <td>
                      {member.mfaEnabled ? (
                        <span className="tag tag--green">Enabled</span>
                      ) : (
                        <span className="tag tag--red">Not set up</span>
                      )}
                    </td>
                    <td>
                      <LocalTime iso={member.createdAt} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )
      }
    </LoadedContent>
  );
}
