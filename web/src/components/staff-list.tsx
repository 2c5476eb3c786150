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
      {({ staff }) => {
        // Account details come only to those who look after accounts (the manager, the DPO).
        const detailed = staff.some((m) => m.email !== undefined);
        return staff.length === 0 ? (
          <p className="empty-state">No staff accounts yet.</p>
        ) : (
          <div className="table-scroll" role="region" aria-label={caption} tabIndex={0}>
            <table className="table table--cards">
              <caption className="visually-hidden">{caption}</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  {detailed ? <th scope="col">Email</th> : null}
                  <th scope="col">Role</th>
                  {detailed ? (
                    <>
                      <th scope="col">Two-step verification</th>
                      <th scope="col">Account created</th>
                    </>
                  ) : null}
                </tr>
              </thead>
              <tbody>
                {staff.map((member) => (
                  <tr key={member.id}>
                    <th scope="row">
                      {member.displayName}
                      {member.id === selfId ? <span className="muted"> (you)</span> : null}
                    </th>
                    {detailed ? (
                      <td className="break" data-label="Email">
                        {member.email}
                      </td>
                    ) : null}
                    <td data-label="Role">{roleLabel(member.role)}</td>
                    {detailed ? (
                      <>
                        <td data-label="Two-step verification">
                          {member.mfaEnabled ? (
                            <span className="tag tag--green">Enabled</span>
                          ) : (
                            <span className="tag tag--red">Not set up</span>
                          )}
                        </td>
                        <td data-label="Account created">{member.createdAt ? <LocalTime iso={member.createdAt} /> : null}</td>
                      </>
                    ) : null}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        );
      }}
    </LoadedContent>
  );
}
